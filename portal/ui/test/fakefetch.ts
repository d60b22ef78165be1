// A scripted stand-in for fetch: each request goes to the route whose
// pattern its URL matches, and streamed answers are pushed line by line.

export type Handler = (url: string) => Response | Promise<Response>;

export class FakeFetch {
  readonly calls: string[] = [];
  private routes: { pattern: RegExp; queue: Handler[] }[] = [];
  private saved = globalThis.fetch;

  /** Answers the next request matching pattern with h (in the order queued). */
  on(pattern: RegExp, h: Handler): this {
    let r = this.routes.find((x) => x.pattern.source === pattern.source);
    if (!r) this.routes.push((r = { pattern, queue: [] }));
    r.queue.push(h);
    return this;
  }

  install(): this {
    globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = String(input);
      this.calls.push(url);
      const r = this.routes.find((x) => x.pattern.test(url));
      const h = r?.queue.shift();
      if (!h) {
        // Nothing scripted: hang until aborted, like a server that never answers.
        return new Promise<Response>((_, reject) =>
          init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))),
        );
      }
      return h(url);
    }) as typeof fetch;
    return this;
  }

  restore(): void {
    globalThis.fetch = this.saved;
  }
}

/** A 200 NDJSON response whose lines the test pushes, then ends. */
export class Stream {
  private ctl!: ReadableStreamDefaultController<Uint8Array>;
  readonly response: Response;

  constructor(lines: unknown[] = []) {
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (this.ctl = c) });
    this.response = new Response(body, { status: 200, headers: { 'Content-Type': 'application/x-ndjson' } });
    for (const l of lines) this.push(l);
  }

  push(v: unknown): void {
    this.ctl.enqueue(new TextEncoder().encode(JSON.stringify(v) + '\n'));
  }

  end(): void {
    this.ctl.close();
  }
}

export function json(v: unknown, status = 200): Response {
  return new Response(JSON.stringify(v), { status, headers: { 'Content-Type': 'application/json' } });
}

export function statusError(code: number, reason: string, message: string): Response {
  return json({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message }, code);
}

/** Resolves once cond() holds (polling), or fails after ms. */
export async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export const FAST = { minStreamMs: 0, backoffMs: 1, maxBackoffMs: 5 };
