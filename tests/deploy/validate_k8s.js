#!/usr/bin/env node
// Validates Kubernetes objects against the API's OpenAPI schemas (the npm package
// kubernetes-models, generated from them), strictly: a field the schema does not define is an
// error too, as the API server's strict field validation reports it.
//
// usage: node validate_k8s.js NODE_MODULES_DIR < objects.json   (a JSON array of objects)
// Prints one line per problem ("Kind/name: path: message") and exits 1 when there is any.
"use strict";
const path = require("path");
const nodeModules = process.argv[2];
const load = (name) => require(path.join(nodeModules, name));

function modelClass(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const module = group === "" ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`;
  let mod;
  try {
    mod = load(module);
  } catch (e) {
    return null;
  }
  return mod[kind] || null;
}

// Wraps `value` so that every property the validator looks at is recorded under its path; what
// an object holds and the validator never read is a field the schema does not have.
function track(value, where, seen) {
  if (value === null || typeof value !== "object") return value;
  const proxy = new Proxy(value, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver);
      if (typeof key !== "string" || !Object.prototype.hasOwnProperty.call(target, key)) return v;
      const at = `${where}/${key}`;
      seen.add(at);
      return track(v, at, seen);
    },
    ownKeys(target) {  // maps (labels, data, ...) are walked by their keys: all of them are read
      const keys = Reflect.ownKeys(target);
      for (const k of keys) if (typeof k === "string") seen.add(`${where}/${k}`);
      return keys;
    },
  });
  return proxy;
}

function unread(value, where, seen, out) {
  if (value === null || typeof value !== "object") return;
  for (const [k, v] of Object.entries(value)) {
    const at = `${where}/${k}`;
    if (!seen.has(at)) {
      out.push(`${at}: field not in the schema`);
      continue;
    }
    unread(v, at, seen, out);
  }
}

const objects = JSON.parse(require("fs").readFileSync(0, "utf8"));
const problems = [];
for (const obj of objects) {
  const name = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
  const Model = modelClass(obj.apiVersion || "", obj.kind || "");
  if (Model === null) {
    problems.push(`${name}: ${obj.apiVersion} ${obj.kind} is not a Kubernetes API type`);
    continue;
  }
  const model = new Model(obj);
  try {
    model.validate();
  } catch (e) {
    problems.push(`${name}: ${e.message}`);
  }
  const seen = new Set();
  const plain = JSON.parse(JSON.stringify(obj));
  try {
    Model.prototype.validate.call(track(plain, "", seen));
  } catch (e) {
    // Reported above; this pass only records which fields the schema reads.
  }
  const unknown = [];
  unread(plain, "", seen, unknown);
  for (const u of unknown) {
    if (u.startsWith("/apiVersion") || u.startsWith("/kind")) continue;
    problems.push(`${name}: ${u}`);
  }
}
for (const p of problems) console.log(p);
console.log(`validate_k8s: ${objects.length} objects, ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
