import { Suspense, lazy, useEffect, useState } from "react";
import { Accounts } from "../Accounts";
import { TokenContext } from "./common";

// The first page comes with the bundle; the others (and the chart code) load when opened.
const Analytics = lazy(() => import("./Analytics").then((m) => ({ default: m.Analytics })));
const Positions = lazy(() => import("./Positions").then((m) => ({ default: m.Positions })));
const Reports = lazy(() => import("./Reports").then((m) => ({ default: m.Reports })));
const Tax = lazy(() => import("./Tax").then((m) => ({ default: m.Tax })));

/** The client view's pages, addressed by the fragment (#/analytics), so Back works. */
const PAGES = [
  { path: "accounts", title: "Accounts & orders", page: Accounts },
  { path: "analytics", title: "Analytics", page: Analytics },
  { path: "positions", title: "Positions & deals", page: Positions },
  { path: "reports", title: "Reports", page: Reports },
  { path: "tax", title: "Tax", page: Tax },
] as const;

function currentPath(): string {
  const path = window.location.hash.replace(/^#\/?/, "");
  return PAGES.some((p) => p.path === path) ? path : "accounts";
}

export function ClientArea({ token }: { token: string }) {
  const [path, setPath] = useState(currentPath);
  useEffect(() => {
    const follow = () => setPath(currentPath());
    window.addEventListener("hashchange", follow);
    return () => window.removeEventListener("hashchange", follow);
  }, []);
  const current = PAGES.find((p) => p.path === path) ?? PAGES[0];
  const Page = current.page;
  useEffect(() => {
    document.title = `${current.title} · client area`;
  }, [current.title]);
  return (
    <TokenContext.Provider value={token}>
      <nav aria-label="Client area" className="pages">
        <ul>
          {PAGES.map((p) => (
            <li key={p.path}>
              <a href={`#/${p.path}`} aria-current={p.path === path ? "page" : undefined}>
                {p.title}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <Suspense fallback={<p aria-busy="true">Loading…</p>}>
        <Page />
      </Suspense>
    </TokenContext.Provider>
  );
}
