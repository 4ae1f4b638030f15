import { defineConfig } from "drizzle-kit";

// Used only to generate migrations from db/schema.ts (`npm run db:generate`); applying them is db/migrate.ts.
export default defineConfig({
  dialect: "postgresql",
  schema: "./db/schema.ts",
  out: "./db/migrations",
});
