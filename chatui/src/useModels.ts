/** The catalogue of models for the pickers, read at load and again every so often (readiness changes). */

import { useEffect, useState } from "react";
import { listModels, type Catalogue, type ModelInfo } from "./api";
import { sleep, whenVisible } from "./readiness";

/** How often the models' readiness is read again while the page is visible. */
export const MODELS_REFRESH_MS = 15000;

export const NO_MODELS: Catalogue = { models: [], default: null };

export function useModels(): Catalogue {
  const [catalogue, setCatalogue] = useState<Catalogue>(NO_MODELS);
  useEffect(() => {
    const ac = new AbortController();
    void (async () => {
      while (!ac.signal.aborted) {
        try {
          const next = await listModels();
          if (!ac.signal.aborted) setCatalogue(next);
        } catch {
          // The list stays as it was: the pickers still work with what they have.
        }
        await sleep(MODELS_REFRESH_MS, ac.signal);
        await whenVisible(ac.signal);
      }
    })();
    return () => ac.abort();
  }, []);
  return catalogue;
}

/** What a person reads for a model id: its display name, else the id itself. */
export function modelLabel(catalogue: Catalogue, id: string | null | undefined): string {
  if (!id) return "";
  return catalogue.models.find((m: ModelInfo) => m.id === id)?.display_name ?? id;
}
