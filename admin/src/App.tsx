import { lazy, Suspense } from "react";
import { Navigate, NavLink, Route, Routes } from "react-router";
import { AcceptInvitation } from "./screens/AcceptInvitation.tsx";
import { SignIn } from "./screens/SignIn.tsx";
import { DraftNotice, SessionGate, useSession } from "./session.tsx";
import { Button, Loading } from "./ui.tsx";

const Schedule = lazy(() => import("./screens/Schedule.tsx"));
const PatientFind = lazy(() =>
  import("./screens/Patients.tsx").then((m) => ({ default: m.PatientFind })),
);
const PatientChart = lazy(() =>
  import("./screens/Patients.tsx").then((m) => ({ default: m.PatientChart })),
);
const Audit = lazy(() => import("./screens/Audit.tsx"));
const Reminders = lazy(() => import("./screens/Reminders.tsx"));
const Users = lazy(() => import("./screens/Users.tsx"));

type Role = "patient" | "clinician" | "staff" | "admin" | "service";
const NAV: { to: string; label: string; roles: readonly Role[] }[] = [
  { to: "/schedule", label: "Schedule", roles: ["clinician", "staff", "admin"] },
  { to: "/patients", label: "Patients", roles: ["clinician", "staff", "admin"] },
  { to: "/audit", label: "Audit", roles: ["admin"] },
  { to: "/reminders", label: "Reminders", roles: ["staff", "admin"] },
  { to: "/users", label: "Users", roles: ["admin"] },
];

function Shell() {
  const { me, signOut } = useSession();
  const nav = NAV.filter((n) => n.roles.includes(me.user.role));
  const can = (to: string) => nav.some((n) => n.to === to);
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Haven</span>
        <nav aria-label="Main">
          <ul>
            {nav.map((n) => (
              <li key={n.to}>
                <NavLink to={n.to}>{n.label}</NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <span className="who">Signed in as {me.user.role}</span>
        <Button onPress={() => void signOut()}>Sign out</Button>
      </header>
      <main id="main" tabIndex={-1}>
        <DraftNotice />
        <Suspense fallback={<Loading />}>
          <Routes>
            <Route path="/schedule" element={<Schedule />} />
            <Route path="/patients" element={<PatientFind />} />
            <Route path="/patients/:patientId" element={<PatientChart />} />
            {can("/audit") && <Route path="/audit" element={<Audit />} />}
            {can("/reminders") && <Route path="/reminders" element={<Reminders />} />}
            {can("/users") && <Route path="/users" element={<Users />} />}
            <Route path="*" element={<Navigate to={nav[0]?.to ?? "/schedule"} replace />} />
          </Routes>
        </Suspense>
      </main>
    </div>
  );
}

/**
 * The panel: the public invitation page (`/accept-invitation`), else the sign-in flow until the
 * session is MFA-verified, then the staff screens.
 */
export function App() {
  return (
    <Routes>
      <Route path="/accept-invitation" element={<AcceptInvitation />} />
      <Route
        path="*"
        element={<SessionGate signedIn={() => <Shell />} signedOut={(p) => <SignIn {...p} />} />}
      />
    </Routes>
  );
}
