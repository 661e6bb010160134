import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Served by the gateway under /client-area/, so every asset URL carries that base.
export default defineConfig({
  base: "/client-area/",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true },
});
