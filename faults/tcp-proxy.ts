/** Outages without stopping the machine's servers: a process reaches a dependency through a proxy we can cut. */
import { connect, createServer, type Socket } from "node:net";

/**
 * A TCP proxy on a loopback port to `target`: `cut()` drops every connection through it and stops listening
 * (connections are refused, as from a server that is down) without stopping the real server other tests use;
 * `restore()` listens on the same port again; `freeze()` hangs the connections open now.
 */
export async function tcpProxy(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.on("close", () => pairs.delete(pair));
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        const address = server.address();
        resolve(typeof address === "object" && address ? address.port : 0);
      });
    });
  const port = await listen(0);
  let listening = true;
  return {
    port,
    async cut() {
      listening = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    /**
     * The connections open now stop carrying data, staying open (a peer that hangs: no answer, no error, as a
     * half-open connection or a wedged client library); new connections work.
     */
    freeze() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
      pairs.clear();
    },
    async restore() {
      await listen(port);
      listening = true;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      if (listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
