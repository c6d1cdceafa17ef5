export * from "./appointments.ts";
export * from "./audit.ts";
export * from "./auth.ts";
export * from "./organizations.ts";
export * from "./patients.ts";
