#!/usr/bin/env bash
# Regenerate src/reconwatch/data/ecs/ecs-fields.tsv (ECS field names and Elasticsearch types) from
# the @elastic/ecs npm package (Apache-2.0), with the machine's node and npm:
#   bash scripts/ecs-schema.sh 9.4.0
set -euo pipefail
version="${1:?usage: ecs-schema.sh ECS_VERSION}"
out="$(cd "$(dirname "$0")/.." && pwd)/src/reconwatch/data/ecs/ecs-fields.tsv"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@elastic/ecs@$version" >/dev/null && tar xzf ./*.tgz)
node - "$work/package" "$out" <<'JS'
const [pkg, out] = process.argv.slice(2);
const { EcsFlat, EcsVersion } = require(`${pkg}/build/commonjs/index.js`);
const rows = [];
for (const [name, field] of Object.entries(EcsFlat)) {
  const array = (field.normalize || []).includes("array") ? "array" : "";
  rows.push([name, field.type, array]);
  for (const multi of field.multi_fields || []) rows.push([multi.flat_name, multi.type, ""]);
}
rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
const head = [
  `# ECS ${EcsVersion}: field, Elasticsearch type, "array" where ECS normalizes it to an array.`,
  "# From the @elastic/ecs npm package (Apache License 2.0, Copyright Elasticsearch B.V.);",
  "# regenerate with scripts/ecs-schema.sh VERSION.",
];
require("fs").writeFileSync(out, [...head, ...rows.map((r) => r.filter(Boolean).join("\t"))].join("\n") + "\n");
JS
echo "wrote $out"
