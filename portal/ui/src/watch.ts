// A client of tables/watch (DESIGN.md, "Changes: tables/watch"): a streamed
// GET answering newline-delimited JSON events. The server ends each stream
// before kube-apiserver's request timeout with a BOOKMARK carrying a resume
// token; the watcher reconnects with ?resumeToken= and misses nothing. A
// token that cannot be resumed is answered 410 (or an in-band ERROR event
// with code 410): the watcher then starts afresh and tells its owner to
// reload what it shows.

import { ApiError, NDJSON, Row, Status, asApiError, errorFrom, isAbort, readLines } from './api';

export interface RowEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  old?: Row;
  new?: Row;
  resumeToken?: string;
}

interface WireEvent {
  type: string;
  old?: Row;
  new?: Row;
  resumeToken?: string;
  object?: Status;
}

/** connecting: first connect; live: streaming; reconnecting: waiting to reconnect after a failure. */
export type WatchState = 'connecting' | 'live' | 'reconnecting' | 'stopped';

export interface WatchHandlers {
  /** A change. */
  onEvent(ev: RowEvent): void;
  /**
   * A stream was opened without a resume token: changes from now on will
   * arrive, but any before may have been missed, so reload what is shown.
   */
  onFresh(): void;
  /** State changes; error says why the watcher is reconnecting. */
  onState(state: WatchState, error?: ApiError): void;
}

/** How long to wait between attempts; tests shorten it. */
export interface WatchTiming {
  /** A stream that ends cleanly sooner than this counts as a failure (no busy loop). */
  minStreamMs: number;
  /** The first backoff; it doubles per failure up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
}

const DEFAULT_TIMING: WatchTiming = { minStreamMs: 1000, backoffMs: 1000, maxBackoffMs: 15_000 };

export class TableWatcher {
  private token = '';
  private stopped = false;
  private abort = new AbortController();
  private wake: (() => void) | undefined;
  /** Whether the last attempt got a 200 (then backoff starts over). */
  private opened = false;

  constructor(
    private readonly url: string,
    private readonly h: WatchHandlers,
    private readonly timing: WatchTiming = DEFAULT_TIMING,
  ) {}

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
    this.wake?.();
    this.h.onState('stopped');
  }

  /** Ends a backoff wait and reconnects now. */
  retryNow(): void {
    this.wake?.();
  }

  private async loop(): Promise<void> {
    let failures = 0;
    this.h.onState('connecting');
    while (!this.stopped) {
      const started = Date.now();
      this.opened = false;
      let err: ApiError | undefined;
      try {
        err = await this.once();
      } catch (e) {
        if (this.stopped || isAbort(e)) return;
        err = asApiError(e);
      }
      if (this.stopped) return;
      if (!err && Date.now() - started < this.timing.minStreamMs) {
        // A stream that ends at once, again and again, must not spin.
        err = new ApiError(0, 'the watch stream ended as soon as it started');
      }
      if (!err) {
        failures = 0; // a clean end (the server's BOOKMARK): reconnect at once
        continue;
      }
      if (err.code === 410 || err.code === 400) {
        // 410: the token is too old or from another apiserver instance
        // (resync); 400: the token is unreadable. Either way start afresh;
        // onFresh then reloads the rows.
        this.token = '';
      }
      failures = this.opened ? 1 : failures + 1;
      this.h.onState('reconnecting', err);
      // A first resync reconnects at once; everything else backs off.
      if (err.code !== 410 || failures > 1) {
        await this.sleep(Math.min(this.timing.maxBackoffMs, this.timing.backoffMs * 2 ** (failures - 1)));
      }
    }
  }

  /** One stream: returns undefined when it ended cleanly, the error otherwise. */
  private async once(): Promise<ApiError | undefined> {
    const u = this.token ? `${this.url}?resumeToken=${encodeURIComponent(this.token)}` : this.url;
    const res = await fetch(u, {
      headers: { Accept: NDJSON },
      signal: this.abort.signal,
      credentials: 'same-origin',
      cache: 'no-store',
    });
    if (!res.ok) return errorFrom(res);
    const fresh = !this.token;
    this.opened = true;
    this.h.onState('live');
    if (fresh) this.h.onFresh();
    let inBand: ApiError | undefined;
    await readLines(res, (line) => {
      let ev: WireEvent;
      try {
        ev = JSON.parse(line) as WireEvent;
      } catch {
        inBand = new ApiError(0, `unreadable watch event: ${line.slice(0, 200)}`);
        return;
      }
      if (ev.resumeToken) this.token = ev.resumeToken;
      switch (ev.type) {
        case 'ADDED':
        case 'MODIFIED':
        case 'DELETED':
          this.h.onEvent(ev as RowEvent);
          break;
        case 'ERROR':
          inBand = ApiError.fromStatus(ev.object?.code ?? 500, ev.object ?? { message: 'watch error' });
          break;
        // BOOKMARK: only its token matters.
      }
    });
    // A stream cut before any token reconnects without one, and onFresh
    // reloads: nothing is missed either way.
    return inBand;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }
}
