// Before a build: copies the generated API types (web/packages/api-types/src, from the Python
// sources of truth) into src/generated, so the published package carries them in its own .d.ts instead of
// depending on the private workspace package. With --clean (before packing) it empties dist/ first, so no file of
// an older build is packed; a plain build leaves dist/ in place for whoever is importing it meanwhile.
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const from = join(here, "..", "..", "api-types", "src");
const to = join(here, "..", "src", "generated");
if (process.argv.includes("--clean")) rmSync(join(here, "..", "dist"), { recursive: true, force: true });
mkdirSync(to, { recursive: true });
for (const name of ["openapi.ts", "contracts.ts", "artifacts.ts"]) {
  copyFileSync(join(from, name), join(to, name));
}
