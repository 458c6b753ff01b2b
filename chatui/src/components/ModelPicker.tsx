import type { Catalogue } from "../api";

interface Props {
  catalogue: Catalogue;
  /** The chat's model; null: the default. */
  value: string | null;
  onChange: (model: string) => void;
  disabled?: boolean;
}

/** The chat's model. A model that is not ready can still be picked: it is marked, and its
 * replies wait for it (or say why they cannot). */
export function ModelPicker({ catalogue, value, onChange, disabled = false }: Props) {
  const chosen = value ?? catalogue.default ?? "";
  const known = catalogue.models.some((m) => m.id === chosen);
  if (catalogue.models.length === 0 && !chosen) return null;
  const current = catalogue.models.find((m) => m.id === chosen);
  return (
    <label className="model-picker" data-ready={current ? String(current.ready) : undefined}>
      <span className="visually-hidden">Model</span>
      <select aria-label="Model" value={chosen} disabled={disabled} onChange={(e) => onChange(e.target.value)}>
        {known || !chosen ? null : <option value={chosen}>{chosen}</option>}
        {catalogue.models.map((m) => (
          <option key={m.id} value={m.id} data-ready={String(m.ready)}>
            {m.ready ? m.display_name : `${m.display_name} (not ready)`}
          </option>
        ))}
      </select>
    </label>
  );
}
