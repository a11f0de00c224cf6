// The console's build: React + Tailwind, emitted for serving under /console/ (the gateway's mount point).
import tailwindcss from "@tailwindcss/vite";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  base: process.env.XR_CONSOLE_BASE ?? "/console/",
  plugins: [react(), tailwindcss()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 500 },
  server: { port: 5173 },
});
