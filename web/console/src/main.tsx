// The console's entry: takes a sign-in token from the URL fragment, loads config.json, mounts the router.

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./app/App";
import { takeTokenFromFragment } from "./app/token";
import "./index.css";

takeTokenFromFragment();
const root = document.getElementById("root");
if (!root) throw new Error("index.html has no #root");
createRoot(root).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
