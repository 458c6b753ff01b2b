/** The open chat for React: the reducer's state plus a controller that drives it. */

import { useEffect, useReducer, useRef, useState } from "react";
import { ChatController, type ChatOptions } from "./chatController";
import { chatReducer, initialChat } from "./chatState";

export function useChat(options: ChatOptions) {
  const [state, dispatch] = useReducer(chatReducer, initialChat);
  // The controller outlives renders; it calls whatever callbacks the latest render gave.
  const latest = useRef(options);
  latest.current = options;
  const [controller] = useState(
    () =>
      new ChatController(dispatch, {
        restoreDraft: (c) => latest.current.restoreDraft(c),
        onListChanged: () => latest.current.onListChanged(),
      }),
  );
  useEffect(() => () => controller.close(), [controller]);
  return { state, controller };
}
