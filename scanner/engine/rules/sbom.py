"""A CycloneDX SBOM: the image as the metadata component, its OS, and the dpkg/apk packages with purls."""

from __future__ import annotations

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from ..model import ImageResult, Package, ScanReport

PURL_TYPE = {"dpkg": "deb", "apk": "apk"}


def _image_name(image: ImageResult) -> tuple[str, str, str]:
    """(name, repository, tag) from the first repo tag, else from the digest."""
    for ref in image.repo_tags:
        repo, tag = ref, ""
        last = ref.rsplit("/", 1)[-1]
        if ":" in last:
            repo, tag = ref.rsplit(":", 1)
        return repo.rsplit("/", 1)[-1].lower() or "image", repo, tag
    return "image", "", ""


def _distro(image: ImageResult, manager: str) -> tuple[str, str]:
    """(purl namespace, distro qualifier)."""
    os_id = (image.distro.get("ID") or ("alpine" if manager == "apk" else "debian")).lower()
    version = image.distro.get("VERSION_ID", "")
    if manager == "apk":
        return os_id, version
    return os_id, f"{os_id}-{version}" if version else ""


def package_purl(image: ImageResult, pkg: Package) -> PackageURL:
    namespace, distro = _distro(image, pkg.manager)
    qualifiers = {}
    if pkg.arch:
        qualifiers["arch"] = pkg.arch
    if distro:
        qualifiers["distro"] = distro
    if pkg.source and pkg.source != pkg.name and pkg.manager == "dpkg":
        qualifiers["upstream"] = pkg.source
    return PackageURL(
        type=PURL_TYPE[pkg.manager],
        namespace=namespace,
        name=pkg.name,
        version=pkg.version or None,
        qualifiers=qualifiers or None,
    )


def image_component(image: ImageResult) -> Component:
    name, repo, tag = _image_name(image)
    digest = image.manifest_digest or image.config_digest
    qualifiers = {}
    if repo and "/" in repo:
        qualifiers["repository_url"] = repo
    if tag:
        qualifiers["tag"] = tag
    purl = PackageURL(type="oci", name=name, version=digest or None, qualifiers=qualifiers or None)
    props = [
        Property(name="lowerdir:config_digest", value=image.config_digest),
        Property(name="lowerdir:platform", value=image.platform or ""),
    ]
    props += [Property(name="lowerdir:repo_tag", value=t) for t in image.repo_tags]
    return Component(
        name=repo or name,
        version=digest,
        type=ComponentType.CONTAINER,
        purl=purl,
        bom_ref=f"image:{digest}",
        properties=props,
    )


def to_cyclonedx(report: ScanReport, *, version: str = "") -> str:
    """The SBOM of the (first) scanned image as CycloneDX 1.6 JSON; with several images (all
    platforms) the others are listed as container components with their own packages."""
    bom = Bom()
    images = report.images
    if not images:
        return JsonV1Dot6(bom).output_as_string(indent=2)
    root = image_component(images[0])
    bom.metadata.component = root
    bom.metadata.properties.add(Property(name="lowerdir:source_sha256", value=report.source.sha256 or ""))
    for n, image in enumerate(images):
        owner = root if n == 0 else image_component(image)
        if n:
            bom.components.add(owner)
            bom.register_dependency(root, [owner])
        children = []
        if image.distro.get("ID"):
            os_comp = Component(
                name=image.distro.get("ID", ""),
                version=image.distro.get("VERSION_ID", ""),
                type=ComponentType.OPERATING_SYSTEM,
                bom_ref=f"os:{image.config_digest}",
                description=image.distro.get("PRETTY_NAME") or None,
            )
            children.append(os_comp)
        for pkg in image.packages:
            purl = package_purl(image, pkg)
            props = [Property(name="lowerdir:package_manager", value=pkg.manager)]
            if pkg.source:
                props.append(Property(name="lowerdir:source_package", value=pkg.source))
            if pkg.license:
                props.append(Property(name="lowerdir:license", value=pkg.license))
            children.append(
                Component(
                    name=pkg.name,
                    version=pkg.version,
                    type=ComponentType.LIBRARY,
                    purl=purl,
                    bom_ref=f"{purl.to_string()}#{image.config_digest}",
                    properties=props,
                )
            )
        for child in children:
            bom.components.add(child)
        bom.register_dependency(owner, children)
    return JsonV1Dot6(bom).output_as_string(indent=2)
