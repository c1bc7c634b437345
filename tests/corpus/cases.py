"""The corpus: each policy of ``policies/``, the rules decided, and a strategy for its inputs.

A ``Case`` is named for its file (package ``corpus.<name>``). ``conflicts`` marks a
policy whose rules conflict for some inputs: the test then requires that OPA
reported a conflict for at least one generated input, so the generator reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.corpus.awkward import anything, document, fuzz, number, record, rfc3339, text

__all__ = ["CASES", "Case"]


@dataclass(frozen=True)
class Case:
    """One corpus policy: ``rules`` are its entry points (``corpus/<name>/<rule>``), ``inputs`` its documents."""

    name: str
    rules: tuple[str, ...]
    inputs: st.SearchStrategy[Any]
    conflicts: bool = False

    def entrypoint(self, rule: str) -> str:
        return f"corpus/{self.name}/{rule}"


def _pick(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


def _small(strategy: st.SearchStrategy[Any], size: int = 4) -> st.SearchStrategy[list[Any]]:
    return st.lists(strategy, max_size=size)


_ROLES = _pick("admin", "editor", "viewer", "auditor", "Admin", "admin ", "")
_ACTIONS = _pick("read", "write", "delete", "list", "*", "READ", "")
_TEAMS = _pick("core", "web", "data", "", "é", "😀")
_INT_OR_FLOAT = st.one_of(st.integers(-5, 5000), st.floats(-10, 5000, allow_nan=False), number)
_IMAGES = _pick("registry.example.com/app:1", "mirror.example.org/db", "docker.io/evil", "hooli.com/nginx",
                "registry.example.com", "REGISTRY.example.com/x", "", "hooli.com/\u0000")
_CONTAINER = record({"image": fuzz(_IMAGES)}, {
    "name": fuzz(_pick("web", "sidecar", 'q"uote')),
    "limits": record(optional={"memory_mb": fuzz(_INT_OR_FLOAT)}),
    "privileged": fuzz(st.booleans()),
    "securityContext": record(optional={"privileged": fuzz(st.booleans())}),
})
_IPS = _pick("10.1.2.3", "10.66.1.1", "192.168.255.255", "172.16.0.1", "fd00::1", "fe80::1", "::ffff:10.0.0.1",
             "10.0.0.0/24", "10.66.0.0/15", "300.1.1.1", "", "10.1.2.3 ", "0.0.0.0/0")
_VERSIONS = _pick("1.4.0", "1.3.9", "1.10.0", "2.0.0-rc.1", "1.4.0+build.5", "v1.4.0", "1.4", "01.4.0", "1.4.0-",
                  "10.20.30", "1.0.0-alpha.beta", "1.0.0-0.3.7", "")
_SIZES = _pick("10Gi", "500M", "1.5G", "1e3", "0", "-1Ki", "10 GB", "10gib", "", "18446744073709551617Ki")
_DURATIONS = _pick("1h", "30m", "1h30m", "-5s", "1.5h", "0", "3d", "10", "", "1µs", "9223372036s")
_PATHS = _pick("/health", "/docs/a/b", "/docs", "/v1/x/status", "/v1/x/y/status", "/admin/users", "/admin",
               "/finance/salary/alice", "/finance/salary/bob", "finance/salary/dave", "/public/x", "//", "")
_HOSTS = [{"name": "a", "env": "prod"}, {"name": "b", "env": "dev"}, {"name": "c", "env": "prod"}]
_CHANGES = record({"type": fuzz(_pick("aws_instance", "aws_iam_role", "aws_s3_bucket", "null_resource"))},
                  {"change": record(optional={"actions": _small(fuzz(_pick("create", "delete", "update")), 3)})})

CASES: tuple[Case, ...] = (
    Case("rbac", ("allow", "reasons", "grants"), document(record(
        {"action": fuzz(_ACTIONS)},
        {"user": record(optional={"roles": fuzz(_small(fuzz(_ROLES)))}),
         "resource": record(optional={"type": fuzz(_pick("doc", "report", "secret", "*"))})}))),
    Case("maintenance_window", ("allow", "open_windows", "now_ns", "weekday", "clock"), document(record(
        {"now": fuzz(rfc3339(days=(6, 13)), weight=6)},
        {"change": record(optional={"emergency": fuzz(st.booleans())})}))),
    Case("token_expiry", ("expired", "remaining_s", "lifetime_h", "too_long"), document(record(
        {"now": fuzz(rfc3339(), weight=5)},
        {"token": record(optional={"exp": fuzz(st.integers(1_770_000_000, 1_780_000_000) | number),
                                   "iat": fuzz(st.integers(1_770_000_000, 1_780_000_000) | number)})}))),
    Case("label_match", ("violations", "allow", "cost_centre"), document(record(optional={"labels": fuzz(record(
        optional={"env": fuzz(_pick("prod", "staging-eu1", "dev-", "PROD", "prod-x_y", "test", "prod\n"), 4),
                  "owner": fuzz(_pick("a@b.io", "a@b", "a b@c.de", "@x.com", "ä@ü.de", "x@y.z"), 4),
                  "billing": fuzz(_pick("CC-1234", "cc-1234", "CC-12345 CC-0000", "CC-12", "x"), 4)}))}))),
    Case("messages", ("deny", "summary", "header", "value_text"), document(record(optional={
        "user": fuzz(text), "resource": fuzz(text), "actions": fuzz(_small(fuzz(_ACTIONS))),
        "size": fuzz(_INT_OR_FLOAT), "value": anything}))),
    Case("quota", ("allow", "usage_ratio", "remaining", "percent", "headroom", "over_by"), document(record(
        {"used": fuzz(_INT_OR_FLOAT, 4), "limit": fuzz(_INT_OR_FLOAT, 4)},
        {"requested": fuzz(_INT_OR_FLOAT, 4)}))),
    Case("set_algebra", ("missing", "extra", "common", "everything", "allow", "overlap", "intersection_all",
                         "union_all", "shapes"), document(record(optional={
                             "required": fuzz(_small(fuzz(_ACTIONS))), "granted": fuzz(_small(fuzz(_ACTIONS)))}))),
    Case("comprehensions", ("names", "teams", "by_team", "totals", "expensive", "index"), document(record(
        optional={"items": fuzz(_small(record({"name": fuzz(text), "team": fuzz(_TEAMS)},
                                              {"cost": fuzz(_INT_OR_FLOAT)})))}))),
    Case("every_rule", ("allow", "all_labelled", "none_privileged"), document(record(optional={
        "containers": fuzz(_small(fuzz(_CONTAINER), 3)),
        "labels": fuzz(st.dictionaries(text, fuzz(text), max_size=3))}))),
    Case("some_in", ("admin", "label_keys", "prod_hosts", "first_match", "has_pair"), document(record(optional={
        "groups": fuzz(_small(fuzz(_pick("admins", "db-owners", "owners", "-owners", "Admins")))),
        "labels": fuzz(st.dictionaries(_pick("a", "b", "é", ""), fuzz(_pick("a", "b", "é", "")), max_size=3)),
        "hosts": fuzz(st.lists(fuzz(st.sampled_from(_HOSTS)), max_size=4)),
        "wanted": fuzz(_pick("prod", "dev", "qa"))}))),
    Case("with_override", ("allow", "allow_as_admin", "allow_with_more", "would_differ", "scaled", "upper_name"),
         document(record(optional={"replicas": fuzz(_INT_OR_FLOAT), "name": fuzz(_pick("legacy", "web", "é"))}))),
    Case("else_chain", ("decision", "levels", "message"), document(record(optional={
        "risk": fuzz(_INT_OR_FLOAT), "scores": fuzz(_small(fuzz(st.integers(-1, 12) | number))),
        "country": fuzz(_pick("XX", "DE", "YY")), "custom_message": fuzz(text)}))),
    Case("functions", ("total", "flagged", "clamped"), document(record(optional={
        "items": fuzz(_small(record(
            {"size": fuzz(_pick("small", "medium", "large", "huge")), "hours": fuzz(_INT_OR_FLOAT)},
            {"id": fuzz(text), "namespace": fuzz(_pick("prod-a", "production", "dev", "prod-"))}))),
        "values": fuzz(_small(fuzz(number)))}))),
    Case("defaults", ("allow", "limit", "mode", "settings", "retries"), document(record(optional={
        "user": fuzz(_pick("root", "Root", "admin")), "limit": fuzz(_INT_OR_FLOAT),
        "strict": fuzz(st.booleans()), "settings": fuzz(record(optional={"retries": fuzz(number)}))}))),
    Case("conflict_complete", ("tier", "label", "safe_tier"), document(record(
        {"spend": fuzz(st.integers(0, 2000) | number, 5)}, {"suspended": fuzz(st.booleans())})), conflicts=True),
    Case("conflict_function", ("price", "limits"), document(record(
        {"base": fuzz(_INT_OR_FLOAT, 5)},
        {"customer": fuzz(_pick({"member": True, "vip": True}, {"member": True}, {"vip": True}, {},
                                {"member": False, "vip": True}, {"member": "yes"}), 5),
         "small": fuzz(_small(_pick("cpu", "ram", "disk"), 2)), "large": fuzz(_small(_pick("cpu", "gpu"), 2))})),
         conflicts=True),
    Case("object_get", ("replicas", "image", "annotations", "cleaned", "merged", "keys", "filtered", "scaled"),
         document(record(optional={
             "spec": fuzz(record(optional={"replicas": fuzz(_INT_OR_FLOAT),
                                           "template": fuzz(record(optional={"image": fuzz(text)}))})),
             "metadata": fuzz(record(optional={
                 "uid": text, "managedFields": anything, "annotations": fuzz(st.dictionaries(text, text, max_size=2)),
                 "labels": fuzz(st.dictionaries(_pick("team", "app", "tier", "é"), fuzz(text), max_size=3))}))}))),
    Case("json_audit", ("line", "payload", "payload_type", "roundtrip", "same", "encoded", "decoded", "as_number"),
         document(record(optional={
             "request": anything, "raw": fuzz(_pick('{"a":1}', "[1,2", "1e400", '"\\u0000"', "null", '{"a":1,"a":2}',
                                                   "18446744073709551617", '"\\ud83d\\ude00"', "-0", "")),
             "b64": fuzz(_pick("aGVsbG8=", "aGVsbG8", "/w==", "8J+YgA==", "AA==", "!!", "")),
             "text": fuzz(_pick("1", "-0", "1e400", "0x10", "1_000", " 1", "18446744073709551617", "0.1", "1e-400",
                                "NaN", "Inf", "1E+2", ".5"))}))),
    Case("strings_awkward", ("facts", "safe", "slug", "suffix_ok", "padded"), document(record(
        {"name": fuzz(text, 6)}, {"suffix": fuzz(text)}))),
    Case("numbers_big", ("facts", "floor_n", "is_int", "big_enough", "ratio", "same"), document(record(
        {"n": fuzz(number, 6), "m": fuzz(number, 6)}))),
    Case("network_acl", ("allow", "blocked_source", "overlaps_internal", "subnet_valid"), document(record(
        optional={"source_ip": fuzz(_IPS, 5), "subnet": fuzz(_IPS, 5)}))),
    Case("semver_gate", ("valid", "allow", "comparison"), document(record(
        {"version": fuzz(_VERSIONS, 5)}, {"other": fuzz(_VERSIONS, 5)}))),
    Case("glob_paths", ("allow", "host_ok"), document(record(optional={
        "path": fuzz(_PATHS, 5), "user": record(optional={"admin": fuzz(st.booleans())}),
        "host": fuzz(_pick("a.example.com", "example.com", "a.b.example.com", "*.example.com", "A.EXAMPLE.COM"))}))),
    Case("http_api", ("allow", "path", "segments"), document(record(optional={
        "method": fuzz(_pick("GET", "HEAD", "POST", "get")), "path": fuzz(_PATHS, 5),
        "user": fuzz(_pick("alice", "bob", "dave", "erin", "mallory"))}))),
    Case("k8s_admission", ("deny", "allowed", "response"), document(record(optional={"request": record(optional={
        "kind": record(optional={"kind": fuzz(_pick("Pod", "Deployment"))}),
        "object": record(optional={
            "metadata": record(optional={"labels": fuzz(record(optional={"team": fuzz(_TEAMS)}))}),
            "spec": record(optional={"containers": fuzz(_small(fuzz(_CONTAINER), 3))})})})}))),
    Case("terraform_plan", ("score", "authorized", "touches_iam"), document(record(optional={
        "resource_changes": fuzz(_small(fuzz(_CHANGES), 5)), "threshold": fuzz(_INT_OR_FLOAT)}))),
    Case("storage_quota", ("requested", "quota", "allow", "left"), document(record(
        {"size": fuzz(_SIZES, 5), "quota": fuzz(_SIZES, 5)}))),
    Case("time_offsets", ("ordered", "duration_h", "date", "end_date", "day", "next_week", "ttl_ns", "expires",
                          "expired", "diff"), document(record(
        {"start": fuzz(rfc3339(), 6), "end": fuzz(rfc3339(), 6)}, {"ttl": fuzz(_DURATIONS, 5)}))),
)
