import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import { babelOptimizerPlugin } from "@graphql-codegen/client-preset";

// Served by the gateway under /client-area/, so every asset URL carries that base.
export default defineConfig({
  base: "/client-area/",
  plugins: [
    react({
      // Each graphql(`…`) call becomes an import of its generated document, so the bundle
      // carries no table of every operation's source text (codegen's client-preset plugin).
      babel: { plugins: [[babelOptimizerPlugin, { artifactDirectory: "./src/gql", gqlTagName: "graphql" }]] },
    }),
  ],
  build: { outDir: "dist", emptyOutDir: true },
});
