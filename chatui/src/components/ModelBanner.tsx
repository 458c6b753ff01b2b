import type { ModelState } from "../api";

const TEXT: Record<Exclude<ModelState, "ready">, string> = {
  loading: "Loading the model… You can write your message now; replies start as soon as it is ready.",
  unreachable: "The model service is unreachable… This page keeps checking; replies work again as soon as it is back.",
};

/** Above the chat while the model is not ready; it goes away by itself once it is. */
export function ModelBanner({ state }: { state: Exclude<ModelState, "ready"> }) {
  return (
    <div className={`model-banner is-${state}`} role="status" aria-live="polite">
      <span className="dots" aria-hidden="true">
        <i />
        <i />
        <i />
      </span>
      <span>{TEXT[state]}</span>
    </div>
  );
}
