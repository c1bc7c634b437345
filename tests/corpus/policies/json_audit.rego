# Audit lines: the request serialised with json.marshal, embedded payloads and numbers parsed back.
package corpus.json_audit

line := concat(" ", ["audit", json.marshal(input.request)])

payload := json.unmarshal(input.raw) if json.is_valid(input.raw)

payload_type := type_name(payload)

roundtrip := json.unmarshal(json.marshal(input.request))

same if roundtrip == input.request

encoded := base64.encode(json.marshal(input.request))

decoded := base64.decode(input.b64)

as_number := to_number(input.text)
