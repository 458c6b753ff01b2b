const SUGGESTIONS = [
  "Explain how HTTP caching works, briefly",
  "Write a Python function that reverses a string",
  "Give me three ideas for a rainy Sunday",
  "Summarize the rules of chess in five bullet points",
];

/** A new chat: a greeting and a few ways to start. */
export function EmptyState({ onPick }: { onPick: (text: string) => void }) {
  return (
    <div className="empty">
      <h2>How can I help?</h2>
      <p>Ask anything. Replies stream in as they are written, and you can stop, edit or regenerate them.</p>
      <ul className="suggestions" aria-label="Suggestions">
        {SUGGESTIONS.map((s) => (
          <li key={s}>
            <button type="button" className="suggestion" onClick={() => onPick(s)}>
              {s}
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}
