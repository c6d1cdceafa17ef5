import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../client-sdk/index.ts";
import { buildServer } from "./http.ts";
import { Metrics } from "./metrics.ts";
import { reminderQueueDepth } from "./reminders/service.ts";
import { appRouter } from "./router.ts";
import { loginWithMfa, makeOrganization, makePatient, makeUser } from "./test/factory.ts";
import { createHarness, type Harness } from "./test/harness.ts";

/** GET /metrics: per-procedure counts and latency, queue depth; no PHI in any label. */
let h: Harness;
const servers: Awaited<ReturnType<typeof buildServer>>[] = [];

async function serve(metricsToken?: string): Promise<string> {
  const metrics = new Metrics({ queueDepth: () => reminderQueueDepth(h.deps.db) });
  const app = await buildServer({
    router: appRouter,
    services: { ...h.services, metrics },
    database: h.testDb.handle,
    allowedOrigins: [],
    metricsToken,
  });
  servers.push(app);
  await app.listen({ host: "127.0.0.1", port: 0 });
  const addr = app.server.address();
  return `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
}

beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => {
  for (const s of servers) await s.close();
  await h?.close();
});

describe("/metrics", () => {
  it("counts calls by procedure and outcome, times them, and shows the reminder queue — without PHI", async () => {
    const url = await serve();
    const org = await makeOrganization(h.deps);
    const patient = await makePatient(h.deps, org);
    const staff = await makeUser(h.deps, "staff", org);
    await expect(
      createHavenClient({ url }).auth.login.mutate({
        email: staff.email,
        password: "not the password at all",
      }),
    ).rejects.toThrow();
    const token = await loginWithMfa(h, url, staff);
    const client = createHavenClient({ url, token });
    const found = await client.patients.search.query({
      family: patient.demographics.name.family,
      birthDate: patient.demographics.birthDate ?? "",
    });
    expect(found).toHaveLength(1);
    await client.patients.get.query({ patientId: patient.id });

    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/plain/);
    const body = await res.text();
    expect(body).toMatch(
      /haven_trpc_calls_total\{procedure="auth\.login",type="mutation",code="UNAUTHORIZED"\} 1/,
    );
    expect(body).toMatch(
      /haven_trpc_calls_total\{procedure="patients\.search",type="query",code="OK"\} 1/,
    );
    expect(body).toMatch(
      /haven_trpc_duration_seconds_count\{procedure="patients\.get",type="query"\} 1/,
    );
    expect(body).toMatch(/haven_reminders\{status="pending"\} 0/);
    expect(body).toMatch(/haven_process_cpu_seconds_total/);
    for (const phi of [
      patient.id,
      patient.demographics.name.family,
      patient.demographics.birthDate ?? "",
      staff.email,
      token,
    ]) {
      expect(body).not.toContain(phi);
    }
  });

  it("with a token configured, refuses scrapes without it", async () => {
    const url = await serve("metrics-token-for-tests-0123456789");
    expect((await fetch(`${url}/metrics`)).status).toBe(403);
    expect(
      (await fetch(`${url}/metrics`, { headers: { authorization: "Bearer wrong-token-000000" } }))
        .status,
    ).toBe(403);
    const ok = await fetch(`${url}/metrics`, {
      headers: { authorization: "Bearer metrics-token-for-tests-0123456789" },
    });
    expect(ok.status).toBe(200);
  });

  it("is absent when the server has no metrics", async () => {
    const url = await h.listen();
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
  });
});
