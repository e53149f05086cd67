/**
 * What of the configuration may be shown: values are echoed in messages and the start-up log,
 * secrets never are (passwords and PEM contents replaced, credentials inside URLs masked).
 */
import type { Config, PemFile } from '../config.js';

export const REDACTED = '[redacted]';
// Credentials inside a URL (https://user:pass@host) are masked wherever a value is echoed.
export const maskUrl = (s: string): string => s.replace(/\/\/[^/@\s]*@/g, `//${REDACTED}@`);
export const quote = (s: string): string => `'${maskUrl(s.length > 200 ? `${s.slice(0, 200)}...` : s)}'`;

/** A plain copy safe to log: passwords and PEM contents replaced by '[redacted]', URL credentials masked. */
export function redactedConfig(c: Config): Record<string, unknown> {
  const pem = (f: PemFile | undefined) => f && { path: f.path, pem: REDACTED };
  const { kafka, registry: _registry, ...rest } = structuredClone(c);
  const { ssl, sasl } = kafka;
  return {
    ...rest,
    kafka: {
      ...kafka,
      ssl: { enabled: ssl.enabled, rejectUnauthorized: ssl.rejectUnauthorized, ca: pem(ssl.ca), cert: pem(ssl.cert), key: pem(ssl.key) },
      sasl: sasl && { mechanism: sasl.mechanism, username: sasl.username, password: REDACTED },
    },
    registry: {
      url: maskUrl(c.registry.url),
      auth: c.registry.auth && { username: c.registry.auth.username, password: REDACTED },
      ca: pem(c.registry.ca),
      outputSchemaId: c.registry.outputSchemaId,
    },
  };
}
