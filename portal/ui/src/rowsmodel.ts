// The state of the row browser: one page of a table's rows (tables/rows,
// limit + continue), kept up to date by tables/watch.
//
// Ordering of a load and the watch: events that arrive while a page loads
// are queued and applied once it is in (applying an event twice is
// harmless: a row is set to its new value or removed). When the watch
// (re)opens without a resume token, changes may have been missed, so the
// page is loaded again.

import { ApiError, K8s, Row, RowKey, RowList, asApiError, get } from './api';
import { RowEvent, TableWatcher, WatchState, WatchTiming } from './watch';

export interface Change {
  type: RowEvent['type'];
  key: RowKey;
  at: Date;
  /** Whether the row is on the page shown. */
  here: boolean;
}

const MAX_RECENT = 20;

/** RethinkDB's order of primary keys: numbers before strings. */
export function compareKeys(a: RowKey, b: RowKey): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'number') return -1;
  if (typeof b === 'number') return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export class RowsModel {
  rows: Row[] = [];
  limit = 50;
  /** The continue token of each page up to the current one ('' for the first). */
  tokens: string[] = [''];
  /** The continue token of the next page; '' when this is the last. */
  next = '';
  loading = false;
  loaded = false;
  error: ApiError | null = null;
  watchState: WatchState = 'connecting';
  watchError: ApiError | null = null;
  recent: Change[] = [];
  /** Keys of rows that just changed, for a highlight. */
  flash = new Set<string>();

  private queue: RowEvent[] = [];
  private loadSeq = 0;
  private watcher: TableWatcher;
  private listener: () => void = () => {};

  constructor(
    private readonly k8s: K8s,
    private readonly ns: string,
    readonly table: string,
    readonly primaryKey: string,
    timing?: WatchTiming,
  ) {
    this.watcher = new TableWatcher(k8s.url(ns, 'tables', table, 'watch'), {
      onEvent: (ev) => this.onEvent(ev),
      onFresh: () => void this.load(),
      onState: (state, err) => {
        this.watchState = state;
        this.watchError = err ?? null;
        this.changed();
      },
    }, timing);
  }

  get page(): number {
    return this.tokens.length - 1;
  }

  /** Starts loading and watching; onChange is called after every change of state. */
  start(onChange: () => void): void {
    this.listener = onChange;
    void this.load();
    this.watcher.start();
  }

  stop(): void {
    this.listener = () => {};
    this.loadSeq++;
    this.watcher.stop();
  }

  retryWatch(): void {
    this.watcher.retryNow();
  }

  keyOf(row: Row | undefined): RowKey | undefined {
    const k = row?.[this.primaryKey];
    return typeof k === 'string' || typeof k === 'number' ? k : undefined;
  }

  /** Loads the current page again. */
  async load(): Promise<void> {
    const seq = ++this.loadSeq;
    this.loading = true;
    this.changed();
    const query: Record<string, string> = { limit: String(this.limit) };
    const token = this.tokens[this.tokens.length - 1];
    if (token) query.continue = token;
    try {
      const list = await get<RowList>(this.k8s.rowsURL(this.ns, this.table, undefined, query));
      if (seq !== this.loadSeq) return;
      this.rows = list.items ?? [];
      this.next = list.metadata?.continue ?? '';
      this.error = null;
      this.loaded = true;
      this.flash.clear();
      const queued = this.queue;
      this.queue = [];
      for (const ev of queued) this.apply(ev);
    } catch (e) {
      if (seq !== this.loadSeq) return;
      this.error = asApiError(e);
    }
    this.loading = false;
    this.changed();
  }

  nextPage(): void {
    if (!this.next) return;
    this.tokens = [...this.tokens, this.next];
    void this.load();
  }

  prevPage(): void {
    if (this.tokens.length <= 1) return;
    this.tokens = this.tokens.slice(0, -1);
    void this.load();
  }

  firstPage(): void {
    this.tokens = [''];
    void this.load();
  }

  setLimit(limit: number): void {
    this.limit = limit;
    this.firstPage();
  }

  /** Puts a row the server returned (after an edit) in place. */
  put(row: Row): void {
    const key = this.keyOf(row);
    const i = this.rows.findIndex((r) => this.keyOf(r) === key);
    if (i >= 0) {
      this.rows = this.rows.map((r, j) => (j === i ? row : r));
      this.changed();
    }
  }

  private onEvent(ev: RowEvent): void {
    const key = this.keyOf(ev.new ?? ev.old);
    if (key === undefined) return;
    if (this.loading) this.queue.push(ev);
    const here = this.loading ? false : this.apply(ev);
    this.recent = [{ type: ev.type, key, at: new Date(), here }, ...this.recent].slice(0, MAX_RECENT);
    this.changed();
  }

  /** Applies an event to the page; reports whether it touched the page. */
  private apply(ev: RowEvent): boolean {
    const key = this.keyOf(ev.new ?? ev.old);
    if (key === undefined) return false;
    const i = this.rows.findIndex((r) => this.keyOf(r) === key);
    if (ev.type === 'DELETED' || !ev.new) {
      if (i < 0) return false;
      this.rows = this.rows.filter((_, j) => j !== i);
      return true;
    }
    const row = ev.new;
    if (i >= 0) {
      this.rows = this.rows.map((r, j) => (j === i ? row : r));
    } else if (this.belongsHere(key)) {
      const at = this.rows.findIndex((r) => compareKeys(key, this.keyOf(r) ?? '') < 0);
      this.rows = at < 0 ? [...this.rows, row] : [...this.rows.slice(0, at), row, ...this.rows.slice(at)];
    } else {
      return false;
    }
    this.highlight(key);
    return true;
  }

  /** Whether a new key falls within the range of the page shown. */
  private belongsHere(key: RowKey): boolean {
    const first = this.keyOf(this.rows[0]);
    const last = this.keyOf(this.rows[this.rows.length - 1]);
    if (this.page > 0 && first !== undefined && compareKeys(key, first) < 0) return false;
    if (this.next && last !== undefined && compareKeys(key, last) > 0) return false;
    return true;
  }

  private highlight(key: RowKey): void {
    const k = String(key);
    this.flash.add(k);
    setTimeout(() => {
      this.flash.delete(k);
      this.changed();
    }, 2500);
  }

  private changed(): void {
    this.listener();
  }
}
