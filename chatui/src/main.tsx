import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { SharedPage } from "./components/SharedPage";
import { shareIdFromPath } from "./routes";
import "./styles/base.css";
import "./styles/layout.css";
import "./styles/messages.css";
import "./styles/markdown.css";

const root = document.getElementById("root");
if (!root) throw new Error("index.html has no #root");
// A share link's page is its own small page: none of the chat app (list, composer) runs.
const shareId = shareIdFromPath(window.location.pathname);
createRoot(root).render(<StrictMode>{shareId ? <SharedPage shareId={shareId} /> : <App />}</StrictMode>);
