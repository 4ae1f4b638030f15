/**
 * Mints a bearer token for local use, signed with the configured JWT_SECRET (the development secret unless set):
 *
 *   npm run token -- --role customer --sub alice
 *   npm run token -- --role technician --sub tech-1
 *   npm run token -- --role admin --sub ops
 *
 * Prints the token alone on stdout, so `TOKEN=$(npm run -s token -- --role customer --sub alice)` works.
 */
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config.ts";
import { createTokens, ROLES, type Role } from "../http/index.ts";

try {
  const { values } = parseArgs({
    options: { role: { type: "string", default: "customer" }, sub: { type: "string" } },
  });
  const role = values.role as Role;
  if (!ROLES.includes(role)) throw new Error(`--role must be one of ${ROLES.join(", ")}`);
  const sub = values.sub ?? `${role}-1`;
  if (!/^[\w.@:-]{1,100}$/.test(sub)) throw new Error("--sub must be 1-100 letters, digits or ._@:-");
  const config = loadConfig();
  console.log(await createTokens(config.auth.jwtSecret, config.auth.tokenTtlSeconds).sign({ sub, role }));
} catch (error) {
  console.error(
    `token: ${error instanceof ConfigError || error instanceof Error ? error.message : String(error)}`,
  );
  process.exit(1);
}
