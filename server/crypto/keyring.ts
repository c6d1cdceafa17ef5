/**
 * Key material for PHI encryption and blind indexes.
 *
 * A {@link KeyProvider} supplies keys; the {@link Keyring} holds them in memory for the process.
 * Several PHI keys can be live at once: the active key encrypts, every known key decrypts
 * (HIPAA 45 CFR 164.312(a)(2)(iv); rotation re-encrypts online). Blind indexes use a separate key.
 */

/** One AES-256 data key, named by the id written into every envelope it produces. */
export interface DataKey {
  /** `[A-Za-z0-9_-]{1,32}`; appears in ciphertexts, never secret. */
  readonly id: string;
  /** 32 raw bytes. */
  readonly key: Buffer;
}

/** Source of key material (env, file; a KMS/Vault provider implements the same shape). */
export interface KeyProvider {
  /** Human-readable provider name for startup logs (no key material). */
  readonly name: string;
  load(): Promise<KeyMaterial>;
}

export interface KeyMaterial {
  /** All live PHI keys; the first one is active unless `activeKeyId` says otherwise. */
  phiKeys: DataKey[];
  activeKeyId?: string;
  /** 32 raw bytes; per-field HMAC keys are derived from it. */
  blindIndexKey: Buffer;
}

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** Thrown for missing, malformed or unknown keys. Messages name key ids only, never material. */
export class KeyError extends Error {
  override name = "KeyError";
}

/** In-memory, validated set of keys for one process. */
export class Keyring {
  readonly #keys = new Map<string, Buffer>();
  readonly activeKeyId: string;
  readonly blindIndexKey: Buffer;

  constructor(material: KeyMaterial) {
    if (material.phiKeys.length === 0) throw new KeyError("no PHI encryption key configured");
    for (const k of material.phiKeys) {
      // An invalid id is not echoed: it may be key material pasted the wrong way round.
      if (!KEY_ID.test(k.id))
        throw new KeyError(`a PHI key id (${k.id.length} characters) does not match ${KEY_ID}`);
      if (k.key.length !== 32) throw new KeyError(`PHI key "${k.id}" must be 32 bytes`);
      if (this.#keys.has(k.id)) throw new KeyError(`PHI key id "${k.id}" appears twice`);
      this.#keys.set(k.id, k.key);
    }
    const active = material.activeKeyId ?? material.phiKeys[0]?.id;
    if (!active || !this.#keys.has(active))
      throw new KeyError(`active PHI key "${active}" is not loaded`);
    this.activeKeyId = active;
    if (material.blindIndexKey.length !== 32)
      throw new KeyError("blind index key must be 32 bytes");
    this.blindIndexKey = material.blindIndexKey;
  }

  /** Ids of every loaded PHI key, active first. */
  keyIds(): string[] {
    return [this.activeKeyId, ...[...this.#keys.keys()].filter((id) => id !== this.activeKeyId)];
  }

  /** @throws KeyError when the id is not loaded */
  key(id: string): Buffer {
    const k = this.#keys.get(id);
    if (!k) throw new KeyError(`PHI key "${id}" is not loaded`);
    return k;
  }
}

/** The expected shape of HAVEN_PHI_KEYS, quoted in every format error. */
export const PHI_KEYS_FORMAT =
  "expected HAVEN_PHI_KEYS=keyId:base64key[,keyId2:base64key2…] (first = active; ids 1-32 of A-Z a-z 0-9 _ -; " +
  "each key 32 random bytes in base64, 44 characters: `openssl rand -base64 32`)";

const BASE64_32 = /^[A-Za-z0-9+/_-]{43}=?$/;

/**
 * Parse `HAVEN_PHI_KEYS` (`id:base64,id2:base64`, first = active) and `HAVEN_BLIND_INDEX_KEY` (base64).
 * @throws KeyError on malformed values: one line naming the variable, the entry's position and the
 *   expected format, never the value (it may be key material)
 */
export function parseEnvKeys(phiKeys: string, blindIndexKey: string): KeyMaterial {
  const parts = phiKeys.split(",");
  const keys: DataKey[] = parts.map((part, i) => {
    const where = parts.length > 1 ? `entry ${i + 1} of HAVEN_PHI_KEYS` : "HAVEN_PHI_KEYS";
    const idx = part.indexOf(":");
    if (idx <= 0) throw new KeyError(`${where} has no "keyId:" prefix; ${PHI_KEYS_FORMAT}`);
    const id = part.slice(0, idx).trim();
    const encoded = part.slice(idx + 1).trim();
    if (!KEY_ID.test(id)) {
      throw new KeyError(
        `${where} has a key id that is not 1-32 of A-Z a-z 0-9 _ -; ${PHI_KEYS_FORMAT}`,
      );
    }
    if (!BASE64_32.test(encoded)) {
      throw new KeyError(
        `${where} (key "${id}") is not 32 bytes of base64 (${encoded.length} characters); ${PHI_KEYS_FORMAT}`,
      );
    }
    return { id, key: Buffer.from(encoded, "base64") };
  });
  if (!BASE64_32.test(blindIndexKey.trim())) {
    throw new KeyError(
      "HAVEN_BLIND_INDEX_KEY (the blind index key) must be 32 random bytes in base64 (44 characters: `openssl rand -base64 32`)",
    );
  }
  const blind = Buffer.from(blindIndexKey.trim(), "base64");
  return { phiKeys: keys, blindIndexKey: blind };
}

/** Provider reading keys from environment variables (the production path). */
export class EnvKeyProvider implements KeyProvider {
  readonly name = "env";
  constructor(
    private readonly phiKeys: string,
    private readonly blindIndexKey: string,
  ) {}
  async load(): Promise<KeyMaterial> {
    return parseEnvKeys(this.phiKeys, this.blindIndexKey);
  }
}
