/**
 * The row kernels the two-thread path runs, in one list shared by the main thread (`parallel.ts`) and its workers
 * (`parallelWorker.ts`), which pass a kernel by its index in it. Not a public module.
 *
 * @module
 */
import { cispoRows } from './cispo.js';
import { geoMeanRows } from './geoMean.js';
import { klCovRows } from './klCov.js';
import { gpgRows } from './gpg.js';
import { gspoRows } from './gspo.js';
import type { RowsKernel } from './rows.js';
import { sapoRows } from './sapo.js';
import { vanillaRows } from './vanilla.js';

/** The kernels, by index. */
export const ROW_KERNELS: readonly RowsKernel[] = [vanillaRows, sapoRows, gspoRows, cispoRows, gpgRows, geoMeanRows, klCovRows];

/** The index in {@link ROW_KERNELS} of each loss mode the two-thread path runs (eighty-twenty: vanilla's kernel). */
export const ROW_KERNEL_OF_MODE: Readonly<Record<string, number>> = { vanilla: 0, 'eighty-twenty': 0, sapo: 1, gspo: 2, cispo: 3, gpg: 4, geo_mean: 5, kl_cov: 6 };
