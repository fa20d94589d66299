// Takes the service's port: a port that is out of range, taken, privileged or on an address this machine lacks is a
// coded error naming --port or --host; the URL it answers at otherwise.
import type { FastifyInstance } from 'fastify';
import { GpenLabError, badArgument } from '../errors.js';

export async function listen(app: FastifyInstance, host: string | undefined, port: number): Promise<string> {
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw badArgument('port', 'an integer between 0 and 65535', port);
  try {
    await app.listen({ host: host ?? '127.0.0.1', port });
  } catch (e) {
    await app.close().catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      throw new GpenLabError(
        'E_ARGUMENT',
        `Port ${port} on ${host ?? '127.0.0.1'} is already in use`,
        'Pass another --port (0: any free one), or stop what listens there.',
        { input: '--port', port },
      );
    if (code === 'EACCES')
      throw new GpenLabError(
        'E_ARGUMENT',
        `Port ${port} needs privileges this process does not have`,
        'Pass a --port above 1023.',
        { input: '--port', port },
      );
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
      throw new GpenLabError(
        'E_ARGUMENT',
        `${host} is not an address of this machine`,
        "Pass --host 127.0.0.1, 0.0.0.0 or one of this machine's addresses.",
        { input: '--host' },
      );
    throw e;
  }
  const addr = app.server.address();
  return typeof addr === 'object' && addr
    ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
    : String(addr);
}
