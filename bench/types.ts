/**
 * The shape every benchmark section returns; bench/main.ts prints them as tables and writes them with --json.
 */
export interface BenchSection {
  /** Section title, e.g. "Policy loss (DAPO vanilla) + gradient + metrics". */
  title: string;
  /** Column headers. */
  columns: string[];
  /** Rows of cells (numbers are printed with 3 significant digits). */
  rows: (string | number)[][];
  /** Conditions and caveats printed under the table (device, threads, what was skipped and why). */
  notes: string[];
}

/** Options passed to every section. */
export interface BenchOptions {
  /** log2 of the token counts to run, e.g. [16, 20, 23, 24]. */
  sizesLog2: number[];
  /** Repetitions; each section reports the minimum (or a stated statistic). */
  reps: number;
  /** Quick mode for smoke tests: tiny sizes, 1 repetition. */
  quick: boolean;
  /** Interleave verl's PyTorch formulation (bench/torchWorker.ts) with the losses section's columns. */
  torch?: boolean;
}
