// The signed-in frame around every page: skip link, navigation, who is signed in, theme switch, sign out.

import { useState } from "react";
import { NavLink, Outlet } from "react-router";
import { useConsole } from "./session";
import { applyTheme, currentTheme, type Theme } from "./theme";

const link = ({ isActive }: { isActive: boolean }) =>
  `rounded px-2 py-1 focus-visible:outline-2 focus-visible:outline-indigo-500 ${
    isActive ? "bg-slate-200 font-medium dark:bg-slate-800" : "hover:bg-slate-100 dark:hover:bg-slate-900"
  }`;

export function Shell() {
  const { principal, can, signOut } = useConsole();
  return (
    <div className="flex min-h-screen flex-col">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-50 focus:rounded focus:bg-indigo-600 focus:px-3 focus:py-1 focus:text-white">
        Skip to content
      </a>
      <header className="flex flex-wrap items-center gap-4 border-b border-slate-200 px-4 py-2 dark:border-slate-800">
        <span className="font-semibold tracking-tight">xrunner</span>
        <nav aria-label="Main" className="flex gap-1 text-sm">
          <NavLink to="/" end className={link}>Jobs</NavLink>
          <NavLink to="/submit" className={link}>Submit</NavLink>
          <NavLink to="/stats" className={link}>Stats</NavLink>
          {can("admin") && <NavLink to="/admin" className={link}>Admin</NavLink>}
        </nav>
        <div className="ml-auto flex items-center gap-3 text-sm">
          <span data-testid="principal" className="text-slate-600 dark:text-slate-400">
            {principal.subject} · tenant <strong className="text-slate-900 dark:text-slate-100">{principal.tenant}</strong>
          </span>
          <ThemeSwitch />
          <button type="button" onClick={signOut} className="rounded border border-slate-300 px-2 py-1 hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-indigo-500 dark:border-slate-700 dark:hover:bg-slate-900">
            Sign out
          </button>
        </div>
      </header>
      <div id="main" tabIndex={-1} className="flex min-h-0 flex-1 flex-col outline-none">
        <Outlet />
      </div>
    </div>
  );
}

function ThemeSwitch() {
  const [theme, setTheme] = useState<Theme>(currentTheme);
  const next: Theme = theme === "dark" ? "light" : "dark";
  return (
    <button
      type="button"
      aria-label={`Switch to ${next} theme`}
      onClick={() => { applyTheme(next); setTheme(next); }}
      className="rounded border border-slate-300 px-2 py-1 hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-indigo-500 dark:border-slate-700 dark:hover:bg-slate-900"
    >
      {theme === "dark" ? "☀ Light" : "☾ Dark"}
    </button>
  );
}
