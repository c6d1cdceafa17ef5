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

/**
 * Parse `HAVEN_PHI_KEYS` (`id:base64,id2:base64`, first = active) and `HAVEN_BLIND_INDEX_KEY` (base64).
 * @throws KeyError on malformed values (message names the variable, never the value)
 */
export function parseEnvKeys(phiKeys: string, blindIndexKey: string): KeyMaterial {
  const keys: DataKey[] = phiKeys.split(",").map((part) => {
    const idx = part.indexOf(":");
    if (idx <= 0) throw new KeyError("HAVEN_PHI_KEYS entries must look like keyId:base64key");
    const id = part.slice(0, idx).trim();
    const key = Buffer.from(part.slice(idx + 1).trim(), "base64");
    return { id, key };
  });
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
