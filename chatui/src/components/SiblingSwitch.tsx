import type { Message } from "../api";

interface Props {
  message: Message;
  /** Nothing may switch while a reply is being written. */
  disabled: boolean;
  onSwitch: (siblingIndex: number) => void;
}

/** `‹ 2 / 3 ›`: which version of a message is shown, and the way to the others. */
export function SiblingSwitch({ message, disabled, onSwitch }: Props) {
  const index = message.sibling_index ?? 1;
  const count = message.sibling_count ?? 1;
  if (count < 2) return null;
  return (
    <nav className="siblings" aria-label="Versions">
      <button type="button" className="icon-button" aria-label="Previous version" disabled={disabled || index <= 1} onClick={() => onSwitch(index - 1)}>
        ‹
      </button>
      <span className="siblings-count">
        {index} / {count}
      </span>
      <button type="button" className="icon-button" aria-label="Next version" disabled={disabled || index >= count} onClick={() => onSwitch(index + 1)}>
        ›
      </button>
    </nav>
  );
}
