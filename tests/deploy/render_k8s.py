#!/usr/bin/env python3
"""Renders a kustomization directory into its Kubernetes objects, for the deploy tests.

Debian 12's kubectl (1.20) embeds a Kustomize too old for these kustomizations (`labels`,
`patches` with targets), so the tests render with this: the subset of Kustomize that deploy/k8s
uses, with Kustomize's semantics. resources (files and kustomization directories, recursively),
namespace, labels (metadata only, or selectors too with includeSelectors), images (newName,
newTag, digest), configMapGenerator and secretGenerator (files, literals, behavior create/merge/
replace, a content-hash name suffix unless options.disableNameSuffixHash, and the references to
them rewritten in pod templates), and patches (JSON 6902 lists and strategic-merge maps, inline
or from a file, selected by target kind/name). Anything else in a kustomization is an error, so
the renderer never silently ignores a field.

usage: render_k8s.py DIR   (prints the objects as a YAML stream)
"""
import base64
import copy
import hashlib
import json
import os
import sys

import yaml

KNOWN_KEYS = {"apiVersion", "kind", "resources", "namespace", "labels", "images",
              "configMapGenerator", "secretGenerator", "patches", "generatorOptions"}
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding",
                  "StorageClass", "PriorityClass", "CustomResourceDefinition"}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


class RenderError(Exception):
    pass


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def pod_spec(obj):
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] in POD_TEMPLATE_KINDS:
        return spec["template"]["spec"]
    if obj["kind"] == "Pod":
        return spec
    return None


def containers(obj):
    spec = pod_spec(obj)
    if spec is None:
        return []
    return spec.get("initContainers", []) + spec.get("containers", [])


def generator_data(directory, gen):
    data = {}
    for entry in gen.get("files", []):
        key, _, path = entry.partition("=") if "=" in entry else (os.path.basename(entry), "", entry)
        with open(os.path.join(directory, path)) as f:
            data[key] = f.read()
    for literal in gen.get("literals", []):
        key, _, value = literal.partition("=")
        data[key.strip()] = value.strip()
    for entry in gen.get("envs", []):
        with open(os.path.join(directory, entry)) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    key, _, value = line.partition("=")
                    data[key] = value
    return data


def make_generated(kind, gen, data, options):
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}}
    if kind == "Secret":
        obj["type"] = gen.get("type", "Opaque")
        obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    else:
        obj["data"] = data
    opts = dict(options)
    opts.update(gen.get("options", {}))
    obj["_hash"] = not opts.get("disableNameSuffixHash", False)
    return obj


def json_pointer(path):
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def apply_json_patch(obj, ops, where):
    for op in ops:
        parts = json_pointer(op["path"])
        parent = obj
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1]
        kind = op["op"]
        if kind in ("add", "replace"):
            value = copy.deepcopy(op["value"])
            if isinstance(parent, list):
                if last == "-":
                    parent.append(value)
                elif kind == "add":
                    parent.insert(int(last), value)
                else:
                    parent[int(last)] = value
            else:
                if kind == "replace" and last not in parent:
                    raise RenderError(f"{where}: replace of missing {op['path']}")
                parent[last] = value
        elif kind == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        else:
            raise RenderError(f"{where}: unsupported JSON patch op {kind}")


def strategic_merge(target, patch):
    """Maps merge key by key; lists of named items (containers, volumes, env, ports) merge by
    name; other lists are replaced."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            strategic_merge(target[key], value)
        elif (isinstance(value, list) and isinstance(target.get(key), list) and value and
              all(isinstance(v, dict) and "name" in v for v in value + target[key])):
            by_name = {item["name"]: item for item in target[key]}
            for item in value:
                if item["name"] in by_name:
                    strategic_merge(by_name[item["name"]], item)
                else:
                    target[key].append(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(value)


def matches(obj, target):
    if "kind" in target and obj["kind"] != target["kind"]:
        return False
    if "name" in target and obj["metadata"]["name"] != target["name"]:
        return False
    return True


def set_image(container, images):
    image = container.get("image", "")
    name = image.split("@")[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    for img in images:
        if img["name"] == name:
            new = img.get("newName", name)
            if "digest" in img:
                container["image"] = f"{new}@{img['digest']}"
            elif "newTag" in img:
                container["image"] = f"{new}:{img['newTag']}"
            else:
                container["image"] = new


def render_dir(directory):
    path = os.path.join(directory, "kustomization.yaml")
    if not os.path.isfile(path):
        raise RenderError(f"{directory}: no kustomization.yaml")
    k = load_docs(path)[0]
    unknown = set(k) - KNOWN_KEYS
    if unknown:
        raise RenderError(f"{path}: fields this renderer does not implement: {sorted(unknown)}")
    objects = []
    for r in k.get("resources", []):
        target = os.path.normpath(os.path.join(directory, r))
        if os.path.isdir(target):
            objects += render_dir(target)
        else:
            objects += [d for d in load_docs(target)]
    options = k.get("generatorOptions", {})
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for gen in k.get(key, []):
            data = generator_data(directory, gen)
            behavior = gen.get("behavior", "create")
            existing = [o for o in objects
                        if o["kind"] == kind and o["metadata"]["name"] == gen["name"]]
            if behavior == "create":
                if existing:
                    raise RenderError(f"{path}: {kind} {gen['name']} already exists (use merge)")
                objects.append(make_generated(kind, gen, data, options))
            elif not existing:
                raise RenderError(f"{path}: {behavior} of missing {kind} {gen['name']}")
            else:
                obj = existing[0]
                if kind == "Secret":
                    data = {k2: base64.b64encode(v.encode()).decode() for k2, v in data.items()}
                if behavior == "replace":
                    obj["data"] = data
                else:
                    obj["data"].update(data)
    for p in k.get("patches", []):
        where = f"{path}: patch"
        if "path" in p:
            body = load_docs(os.path.join(directory, p["path"]))[0]
        else:
            body = yaml.safe_load(p["patch"])
        target = p.get("target")
        if target is None and isinstance(body, dict):
            target = {"kind": body["kind"], "name": body["metadata"]["name"]}
        hits = [o for o in objects if matches(o, target)]
        if not hits:
            raise RenderError(f"{where}: target {target} matches no object")
        for obj in hits:
            if isinstance(body, list):
                apply_json_patch(obj, body, where)
            else:
                strategic_merge(obj, {key: v for key, v in body.items()
                                      if key not in ("apiVersion", "kind", "metadata")})
    for pair in k.get("labels", []):
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(pair["pairs"])
            if pair.get("includeSelectors"):
                sel = obj.get("spec", {}).get("selector")
                if isinstance(sel, dict):
                    sel.setdefault("matchLabels", sel if obj["kind"] == "Service" else {})
                    (sel if obj["kind"] == "Service" else sel["matchLabels"]).update(pair["pairs"])
            if pair.get("includeSelectors") or pair.get("includeTemplates"):
                if obj["kind"] in POD_TEMPLATE_KINDS:
                    tmpl = obj["spec"]["template"].setdefault("metadata", {})
                    tmpl.setdefault("labels", {}).update(pair["pairs"])
    for obj in objects:
        for c in containers(obj):
            set_image(c, k.get("images", []))
    if "namespace" in k:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = k["namespace"]
    return objects


def hashed_name(obj):
    content = json.dumps({"kind": obj["kind"], "name": obj["metadata"]["name"],
                          "data": obj.get("data", {})}, sort_keys=True)
    return f"{obj['metadata']['name']}-{hashlib.sha256(content.encode()).hexdigest()[:10]}"


def rename_references(objects, renames):
    """Points pod templates' ConfigMap and Secret references at the generated names."""
    def fix(ref, kind, key="name"):
        if ref and ref.get(key) in renames.get(kind, {}):
            ref[key] = renames[kind][ref[key]]

    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        for v in spec.get("volumes", []):
            fix(v.get("configMap"), "ConfigMap")
            fix(v.get("secret"), "Secret", "secretName")
            for source in v.get("projected", {}).get("sources", []):
                fix(source.get("configMap"), "ConfigMap")
                fix(source.get("secret"), "Secret")
        for c in containers(obj):
            for e in c.get("env", []):
                fix(e.get("valueFrom", {}).get("configMapKeyRef"), "ConfigMap")
                fix(e.get("valueFrom", {}).get("secretKeyRef"), "Secret")
            for e in c.get("envFrom", []):
                fix(e.get("configMapRef"), "ConfigMap")
                fix(e.get("secretRef"), "Secret")


def render(directory):
    objects = copy.deepcopy(render_dir(directory))
    renames = {}
    for obj in objects:
        if obj.pop("_hash", False):
            new = hashed_name(obj)
            renames.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = new
            obj["metadata"]["name"] = new
    rename_references(objects, renames)
    return objects


if __name__ == "__main__":
    try:
        yaml.safe_dump_all(render(sys.argv[1]), sys.stdout, sort_keys=False)
    except (RenderError, OSError, KeyError) as e:
        print(f"render_k8s: {e}", file=sys.stderr)
        sys.exit(1)
