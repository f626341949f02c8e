#!/usr/bin/env node
// Checks a Proxy-Wasm module built with the AssemblyScript SDK against Sluice's host:
//   node check_module.js HOST_FUNCTIONS_CC MODULE.wasm...
// - it must export exactly one ABI marker, and it must be proxy_abi_version_0_2_0 (what
//   @solo-io/proxy-runtime 0.1.x emits), plus `memory` and an allocator (`malloc`);
// - every import must be a function the host's table (src/wasm/abi/host_functions.cc) offers to
//   a 0.2.0 module; proxy_clear_route_cache (0.1.0 only, declared by the SDK) must not appear.
// Prints one line per module; exits 1 on the first problem.
"use strict";
const fs = require("fs");

function hostTable(ccPath) {
  const src = fs.readFileSync(ccPath, "utf8");
  const table = new Map();  // "module.name" -> {v010, v020, v021}
  const modules = { env: ["env"], wasi: ["wasi_snapshot_preview1", "wasi_unstable"] };
  // Each `t.add<Fn[, allowed]>(module, "name", sig(...)[, v010, v020, v021[, leaf]]);` statement,
  // and `t.add_leaf<...>(module, "name", sig(...)[, leaf]);` (every version).
  for (const part of src.split(/t\.add(?=<|_leaf<)/).slice(1)) {
    const every = part.startsWith("_leaf<");
    const stmt = part.slice(0, part.indexOf(";"));
    const head = /^[\s\S]*?>\(\s*(\w+|"[^"]+")\s*,\s*"([^"]+)"\s*,\s*sig\(/.exec(stmt);
    if (!head) continue;
    const [, mod, name] = head;
    let depth = 1, i = head[0].length;
    for (; i < stmt.length && depth > 0; i++) depth += stmt[i] === "(" ? 1 : stmt[i] === ")" ? -1 : 0;
    const tail = stmt.slice(i).replace(/\)\s*$/, "");
    const mods = mod.startsWith('"') ? [mod.slice(1, -1)] : modules[mod];
    if (!mods) throw new Error(`host table: unknown module variable ${mod} for ${name}`);
    const f = tail.split(",").map((s) => s.trim()).filter(Boolean);
    const v = (k) => (every || f[k] === undefined ? true : f[k] === "true");
    for (const x of mods) table.set(`${x}.${name}`, { v010: v(0), v020: v(1), v021: v(2) });
  }
  if (table.size < 40) throw new Error(`host table: parsed only ${table.size} entries from ${ccPath}`);
  return table;
}

function leb(buf, pos) {
  let result = 0, shift = 0, b;
  do { b = buf[pos.i++]; result |= (b & 0x7f) << shift; shift += 7; } while (b & 0x80);
  return result >>> 0;
}
function str(buf, pos) {
  const n = leb(buf, pos);
  const s = buf.toString("utf8", pos.i, pos.i + n);
  pos.i += n;
  return s;
}

function moduleInfo(path) {
  const buf = fs.readFileSync(path);
  if (buf.readUInt32LE(0) !== 0x6d736100) throw new Error(`${path}: not a Wasm module`);
  const imports = [], exports = [];
  const pos = { i: 8 };
  while (pos.i < buf.length) {
    const id = buf[pos.i++];
    const size = leb(buf, pos);
    const end = pos.i + size;
    if (id === 2) {
      for (let n = leb(buf, pos); n > 0; n--) {
        const mod = str(buf, pos), name = str(buf, pos), kind = buf[pos.i++];
        imports.push({ mod, name, kind });
        if (kind === 0) leb(buf, pos);                        // type index
        else if (kind === 1) { pos.i++; const fl = leb(buf, pos); leb(buf, pos); if (fl & 1) leb(buf, pos); }
        else if (kind === 2) { const fl = leb(buf, pos); leb(buf, pos); if (fl & 1) leb(buf, pos); }
        else if (kind === 3) pos.i += 2;
      }
    } else if (id === 7) {
      for (let n = leb(buf, pos); n > 0; n--) {
        const name = str(buf, pos), kind = buf[pos.i++];
        leb(buf, pos);
        exports.push({ name, kind });
      }
    }
    pos.i = end;
  }
  return { imports, exports };
}

const [cc, ...wasms] = process.argv.slice(2);
if (!cc || wasms.length === 0) {
  console.error("usage: check_module.js HOST_FUNCTIONS_CC MODULE.wasm...");
  process.exit(2);
}
const table = hostTable(cc);
let bad = 0;
for (const w of wasms) {
  const { imports, exports } = moduleInfo(w);
  const problems = [];
  const markers = exports.filter((e) => e.kind === 0 && e.name.startsWith("proxy_abi_version_"));
  if (markers.length !== 1 || markers[0].name !== "proxy_abi_version_0_2_0") {
    problems.push(`ABI markers ${JSON.stringify(markers.map((m) => m.name))}, want ["proxy_abi_version_0_2_0"]`);
  }
  if (!exports.some((e) => e.kind === 2 && e.name === "memory")) problems.push("no exported memory");
  if (!exports.some((e) => e.kind === 0 && (e.name === "malloc" || e.name === "proxy_on_memory_allocate"))) {
    problems.push("no allocator export");
  }
  for (const i of imports) {
    const key = `${i.mod}.${i.name}`;
    if (i.kind !== 0) { problems.push(`non-function import ${key}`); continue; }
    if (i.name === "proxy_clear_route_cache") { problems.push(`imports ${key} (0.1.0 only: fails to link on 0.2.x)`); continue; }
    const e = table.get(key);
    if (!e) problems.push(`imports ${key}, which the host does not provide`);
    else if (!e.v020) problems.push(`imports ${key}, which the host offers only to other ABI versions`);
  }
  if (problems.length) {
    bad++;
    console.error(`${w}: ${problems.join("; ")}`);
  } else {
    console.log(`${w}: ${markers[0].name}, ${imports.length} imports all provided: ` +
      imports.map((i) => (i.mod === "env" ? i.name : `${i.mod}.${i.name}`)).join(" "));
  }
}
process.exit(bad ? 1 : 0);
