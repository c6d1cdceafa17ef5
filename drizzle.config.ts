import { defineConfig } from "drizzle-kit";

/** drizzle-kit: generates named SQL migrations from `db/schema/` into `db/migrations/`. */
export default defineConfig({
  dialect: "postgresql",
  schema: "./db/schema/index.ts",
  out: "./db/migrations",
  dbCredentials: { url: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" },
  strict: true,
});
