import { describe, expect, it } from "vitest";
import { isTransientFailure, retryTransient } from "./retry.ts";

/** A driver-shaped error carrying a SQLSTATE, wrapped the way Drizzle wraps it. */
function pgError(code: string): Error {
  return Object.assign(new Error("Failed query"), {
    cause: Object.assign(new Error("x"), { code }),
  });
}

describe("retryTransient", () => {
  it("runs a deadlocked or serialization-failed transaction again until it succeeds", async () => {
    const failures = [pgError("40P01"), pgError("40001")];
    let calls = 0;
    const result = await retryTransient(
      async () => {
        calls++;
        const next = failures.shift();
        if (next) throw next;
        return "committed";
      },
      { random: () => 0 },
    );
    expect(result).toBe("committed");
    expect(calls).toBe(3);
  });

  it("does not retry other failures, and gives up after the attempt bound", async () => {
    let calls = 0;
    await expect(
      retryTransient(
        async () => {
          calls++;
          throw pgError("23P01");
        },
        { random: () => 0 },
      ),
    ).rejects.toSatisfy((e) => !isTransientFailure(e));
    expect(calls).toBe(1);

    calls = 0;
    await expect(
      retryTransient(
        async () => {
          calls++;
          throw pgError("40P01");
        },
        { attempts: 4, random: () => 0 },
      ),
    ).rejects.toSatisfy(isTransientFailure);
    expect(calls).toBe(4);
  });
});
