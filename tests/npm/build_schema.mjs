// Builds each SDL file named on the command line with graphql-js's buildSchema, as
// codegen and linters do; exits non-zero, naming the file and the error, if one fails.
import { readFileSync } from "node:fs";
import { buildSchema } from "graphql";

let failed = false;
for (const path of process.argv.slice(2)) {
  try {
    const schema = buildSchema(readFileSync(path, "utf8"));
    console.log(`${path}: ${Object.keys(schema.getTypeMap()).length} types`);
  } catch (error) {
    console.error(`${path}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
