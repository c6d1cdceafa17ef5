import { QueryCache, QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter } from "react-router";
import { App } from "./App.tsx";
import { isSignedOut } from "./api.ts";
import { signedOutBus } from "./session.tsx";
import "./styles.css";

const queryClient = new QueryClient({
  queryCache: new QueryCache({
    // Any query answered UNAUTHORIZED means the server ended the session (idle, expiry, revoked).
    onError: (err, query) => {
      if (isSignedOut(err) && query.queryKey[0] !== "me") signedOutBus.emit("expired");
    },
  }),
  defaultOptions: {
    queries: { retry: false, refetchOnWindowFocus: false, staleTime: 10_000 },
    mutations: { retry: false },
  },
});

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <BrowserRouter basename="/admin">
          <App />
        </BrowserRouter>
      </QueryClientProvider>
    </StrictMode>,
  );
}
