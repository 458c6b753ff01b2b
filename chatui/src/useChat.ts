/** The open chat for React: a controller that drives it, and its state as it changes. */

import { useEffect, useRef, useState, useSyncExternalStore } from "react";
import { ChatController, type ChatOptions } from "./chatController";

export function useChat(options: ChatOptions) {
  // The controller outlives renders; it calls whatever callbacks the latest render gave.
  const latest = useRef(options);
  latest.current = options;
  const [controller] = useState(
    () =>
      new ChatController({
        restoreDraft: (c) => latest.current.restoreDraft(c),
        onListChanged: () => latest.current.onListChanged(),
      }),
  );
  useEffect(() => () => controller.close(), [controller]);
  const state = useSyncExternalStore(controller.subscribe, controller.getState);
  return { state, controller };
}
