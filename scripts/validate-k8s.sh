#!/usr/bin/env bash
# Validates deploy/kubernetes offline (`just test` runs it):
#
# 1. Every manifest (each YAML file but kustomization.yaml, the overlay's patches included) against
#    the Kubernetes API schemas, strictly (unknown fields are errors), with kubernetes-validate
#    from PyPI (installed when missing; it ships the schemas, so this needs no network). A built-in
#    kind or API version it has no schema for is an error here, not a warning; custom resources
#    (a SealedSecret, an ExternalSecret) pass unchecked.
# 2. The kustomizations, without kustomize: every `resources:` / `patches:` path exists, every
#    manifest is listed by one, each patch, `replicas:` and `images:` entry names something the
#    kustomization's resources contain (kind and name), the migration Job and the production
#    overlay deploy the same image tag, and every pod runs non-root on a read-only root filesystem
#    with no privilege escalation, no capabilities and resource requests and limits.
# 3. When kubectl (or kustomize) is installed: each kustomization rendered and validated as in 1,
#    and the rendered production and migration output free of placeholder secrets.
#
# Exits non-zero on any failure; prints one summary line on success.
set -euo pipefail

# The versions this was tested with: the validator, and the oldest Kubernetes the manifests target.
validator_version="1.37.0"
kube_version="1.30.0"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/deploy/kubernetes"
[ -d "$dir" ] || { echo "validate-k8s: $dir is missing" >&2; exit 1; }

# The validator (and PyYAML, which it brings) in the project's own virtualenv (scripts/py-tools.sh).
py="$("$root/scripts/py-tools.sh" "kubernetes-validate==$validator_version")/python"

# kubernetes-validate exits 0 on a kind it has no schema for (it only warns): any output (with
# --quiet it prints only warnings and errors) counts as a failure, except the warning about a custom
# resource (an API group with a dot, not *.k8s.io: a SealedSecret, an ExternalSecret), which it
# cannot know.
validate() {
    local out rc=0
    out="$("$py" -m kubernetes_validate --strict --quiet -k "$kube_version" "$@" 2>&1)" || rc=$?
    out="$(printf '%s\n' "$out" | awk '!(/^WARN .*schema for kind .* with api version [^ \/]+\.[^ \/]+\// && !/k8s\.io\//)' | sed '/^$/d')"
    if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
        printf '%s\n' "$out" >&2
        return 1
    fi
}

# 1. Each manifest file.
manifests=()
while IFS= read -r file; do
    manifests+=("$file")
done < <(find "$dir" -type f \( -name '*.yaml' -o -name '*.yml' \) \
    ! -name 'kustomization.yaml' ! -name 'kustomization.yml' | sort)
[ "${#manifests[@]}" -gt 0 ] || { echo "validate-k8s: no manifests under $dir" >&2; exit 1; }
validate "${manifests[@]}" || { echo "validate-k8s: schema validation failed" >&2; exit 1; }

# 2. The kustomizations, and the pods' security settings.
kustomizations="$("$py" - "$dir" <<'PY'
import os, sys
import yaml

root = sys.argv[1]
errors = []

def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]

def rel(path):
    return os.path.relpath(path, root)

def kustomization_file(d):
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if os.path.isfile(os.path.join(d, name)):
            return os.path.join(d, name)
    return None

listed = set()    # manifest files some kustomization names
visited = {}      # kustomization dir -> ((kind, name) it renders before its patches, image names)

def render(d):
    """What the kustomization in `d` contains, after checking its paths: (kind, name) pairs, and
    the images its containers name (without tag)."""
    d = os.path.normpath(d)
    if d in visited:
        return visited[d]
    visited[d] = (set(), set())  # a cycle ends here
    path = kustomization_file(d)
    k = load_all(path)[0] if path else {}
    objects, images = set(), set()
    if "patchesStrategicMerge" in k or "patchesJson6902" in k or "commonLabels" in k:
        errors.append(f"{rel(path)}: deprecated field (use patches: / labels:)")
    for entry in k.get("resources", []) + k.get("components", []):
        target = os.path.normpath(os.path.join(d, entry))
        if os.path.isdir(target):
            if not kustomization_file(target):
                errors.append(f"{rel(path)}: {entry} is a folder without a kustomization.yaml")
                continue
            inner, inner_images = render(target)
            objects |= inner
            images |= inner_images
        elif os.path.isfile(target):
            listed.add(target)
            for doc in load_all(target):
                objects.add((doc.get("kind"), doc.get("metadata", {}).get("name")))
                images |= pod_images(doc)
        else:
            errors.append(f"{rel(path)}: resource {entry} does not exist")
    for gen, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for g in k.get(gen, []):
            objects.add((kind, g.get("name")))
            for f in g.get("files", []) + g.get("envs", []):
                f = f.split("=", 1)[-1]
                if not os.path.isfile(os.path.join(d, f)):
                    errors.append(f"{rel(path)}: {gen} {g.get('name')}: {f} does not exist")
    for patch in k.get("patches", []):
        targets = []
        if "path" in patch:
            target = os.path.normpath(os.path.join(d, patch["path"]))
            if not os.path.isfile(target):
                errors.append(f"{rel(path)}: patch {patch['path']} does not exist")
                continue
            listed.add(target)
            body = load_all(target)
        else:
            body = [b for b in yaml.safe_load_all(patch.get("patch", "")) if isinstance(b, dict)]
        if "target" in patch:
            t = patch["target"]
            targets.append((t.get("kind"), t.get("name")))
        else:
            targets += [(b.get("kind"), b.get("metadata", {}).get("name")) for b in body]
        for kind, name in targets:
            if not any(kind == ok and (name is None or name == on) for ok, on in objects):
                errors.append(f"{rel(path)}: patch targets {kind}/{name}, "
                              "which its resources do not contain")
    for r in k.get("replicas", []):
        if not any(kind in ("Deployment", "StatefulSet", "ReplicaSet") and name == r.get("name")
                   for kind, name in objects):
            errors.append(f"{rel(path)}: replicas names {r.get('name')}, not among its resources")
    for i in k.get("images", []):
        if i.get("name") not in images:
            errors.append(f"{rel(path)}: images names {i.get('name')}, which no container uses")
    visited[d] = (objects, images)
    return visited[d]

def pod_spec(doc):
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("spec")

def image_name(ref):
    """`registry/repo` of an image reference, without its tag or digest."""
    ref = ref.split("@")[0]
    head, _, last = ref.rpartition("/")
    return (head + "/" if head else "") + last.split(":")[0]

def pod_images(doc):
    pod = pod_spec(doc) or {}
    return {image_name(c["image"])
            for c in pod.get("containers", []) + pod.get("initContainers", []) if "image" in c}

def check_pod(file, doc):
    pod = pod_spec(doc)
    if pod is None or "containers" not in pod or not any("image" in c for c in pod["containers"]):
        return  # not a pod template, or a patch of one
    where = f"{rel(file)}: {doc['kind']}/{doc['metadata']['name']}"
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
        errors.append(f"{where}: pod needs runAsNonRoot: true and runAsUser")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        errors.append(f"{where}: pod needs seccompProfile RuntimeDefault")
    for c in pod["containers"] + pod.get("initContainers", []):
        sc, res = c.get("securityContext", {}), c.get("resources", {})
        if sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{where}: container {c['name']} needs readOnlyRootFilesystem: true")
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{where}: container {c['name']} needs allowPrivilegeEscalation: false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            errors.append(f"{where}: container {c['name']} must drop ALL capabilities")
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(res.get(part, {})):
                errors.append(f"{where}: container {c['name']} needs cpu and memory {part}")

manifests = []
for base, dirs, files in os.walk(root):
    dirs.sort()
    if kustomization_file(base):
        render(base)
    manifests += [os.path.join(base, name) for name in sorted(files)
                  if name.endswith((".yaml", ".yml")) and not name.startswith("kustomization.")]
for m in manifests:
    if m not in listed:
        errors.append(f"{rel(m)}: no kustomization lists it (it would never be applied)")
    for doc in load_all(m):
        check_pod(m, doc)

def tag(d):
    k = load_all(kustomization_file(os.path.join(root, d)))[0]
    return {i["name"]: i.get("digest") or i.get("newTag") for i in k.get("images", [])}
if tag("migrate") != tag("overlays/production"):
    errors.append(f"migrate and overlays/production deploy different images: "
                  f"{tag('migrate')} vs {tag('overlays/production')}")

if errors:
    print("\n".join(f"validate-k8s: {e}" for e in errors), file=sys.stderr)
    sys.exit(1)
print(" ".join(sorted(rel(d) for d in visited)))
PY
)" || { echo "validate-k8s: kustomization checks failed" >&2; exit 1; }

# 3. Each kustomization rendered, when a kustomize is at hand.
if command -v kustomize >/dev/null 2>&1; then
    build=(kustomize build)
elif command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    build=(kubectl kustomize)
else
    build=()
fi
rendered="not rendered (no kubectl or kustomize)"
if [ "${#build[@]}" -gt 0 ]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    for k in $kustomizations; do
        out="$tmp/${k//\//_}.yaml"
        "${build[@]}" "$dir/$k" >"$out" || { echo "validate-k8s: ${build[*]} $k failed" >&2; exit 1; }
        validate "$out" || { echo "validate-k8s: rendered $k does not validate" >&2; exit 1; }
    done
    for k in migrate overlays/production; do
        if grep -q 'REPLACE_ME' "$tmp/${k//\//_}.yaml"; then
            echo "validate-k8s: rendered $k contains the placeholder Secret (REPLACE_ME)" >&2
            exit 1
        fi
    done
    rendered="rendered with ${build[*]}: $kustomizations"
fi

count="$("$py" -c 'import sys, yaml
print(sum(1 for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d))' "${manifests[@]}")"
echo "validate-k8s: ${#manifests[@]} files ($count objects) valid against Kubernetes $kube_version (strict); kustomizations consistent; $rendered"
