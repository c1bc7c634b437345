# Volume requests in human units ("10Gi", "500M") against a project quota.
package corpus.storage_quota

requested := units.parse_bytes(input.size)

quota := units.parse_bytes(input.quota)

default allow := false

allow if requested <= quota

left := quota - requested
