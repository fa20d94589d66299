// Where Redis is: a redis:// or rediss:// URL (user, password, database as in the URL; TLS for rediss, checked
// against the system's CAs or the one given), the options BullMQ's connections take, and a first check that it
// answers, so that a wrong URL is one coded error and not a worker retrying forever.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { GpenLabError, errorMessage } from '../errors.js';

export interface RedisTarget {
  /** The URL with its password hidden, for messages and reports. */
  shown: string;
  options: RedisOptions;
}

const FIX_URL =
  'Pass --redis redis://[:PASSWORD@]HOST[:PORT][/DB], or rediss://... for TLS (--redis-ca FILE for a private CA).';

/** The connection options of a Redis URL; `ca` is a PEM file for rediss:// with a private CA. */
export function redisTarget(url: string, ca?: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new GpenLabError('E_ARGUMENT', `--redis ${url} is not a URL`, FIX_URL, { input: url });
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new GpenLabError('E_ARGUMENT', `--redis ${url}: ${u.protocol} is not redis: or rediss:`, FIX_URL, {
      input: url,
    });
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0)
    throw new GpenLabError('E_ARGUMENT', `--redis ${url}: database ${u.pathname.slice(1)} is not a number`, FIX_URL, {
      input: url,
    });
  const tls = u.protocol === 'rediss:';
  if (ca !== undefined && !tls)
    throw new GpenLabError('E_ARGUMENT', `--redis-ca was given for ${url}, which is not TLS`, 'Use rediss://.', {
      input: ca,
    });
  let caPem: Buffer | undefined;
  if (ca !== undefined) {
    try {
      caPem = readFileSync(ca);
    } catch (e) {
      throw new GpenLabError(
        'E_FILE_MISSING',
        `--redis-ca ${ca}: ${errorMessage(e)}`,
        'Pass the CA certificate (PEM).',
        {
          input: ca,
        },
      );
    }
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const shownUrl = new URL(url);
  if (shownUrl.password) shownUrl.password = '***';
  return {
    shown: shownUrl.toString(),
    options: {
      host,
      port: u.port ? Number(u.port) : 6379,
      db,
      ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
      ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
      ...(tls ? { tls: { ...(isIP(host) ? {} : { servername: host }), ...(caPem ? { ca: caPem } : {}) } } : {}),
      // BullMQ's workers wait through a Redis restart rather than fail their commands
      maxRetriesPerRequest: null,
    },
  };
}

/** The options as BullMQ's queues and workers take them (its type of ioredis's options). */
export function bullConnection(t: RedisTarget): ConnectionOptions {
  return t.options as ConnectionOptions;
}

/** Connects once, without retrying, and pings: a coded E_NETWORK naming the URL when Redis does not answer. */
export async function checkRedis(t: RedisTarget): Promise<{ version: string }> {
  const client = new Redis({
    ...t.options,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectTimeout: 5000,
  });
  // the connection's own error (a refused password, a certificate) says more than the command's "closed"
  let cause: unknown = null;
  client.on('error', (e) => {
    cause ??= e;
  });
  try {
    await client.connect();
    await client.ping();
    const info = await client.info('server');
    return { version: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown' };
  } catch (e) {
    const said = cause ? errorMessage(cause) : errorMessage(e);
    const auth = /NOAUTH|WRONGPASS|invalid password|invalid username/i.test(said);
    throw new GpenLabError(
      'E_NETWORK',
      `Redis at ${t.shown} did not answer: ${said}`,
      auth
        ? 'Put the password in the URL: redis://:PASSWORD@HOST:PORT (or redis://USER:PASSWORD@... for an ACL user).'
        : 'Start Redis there, or fix --redis (host, port, redis:// or rediss:// as the server listens, --redis-ca for TLS with a private CA).',
      { input: t.shown },
      { cause: e },
    );
  } finally {
    client.disconnect();
  }
}
