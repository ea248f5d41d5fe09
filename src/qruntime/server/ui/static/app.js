/* qruntime dashboard: live updates over server-sent events. No framework, no build step.

   qruntime.live(url, handlers)   open an EventSource; handlers by event name get the
                                  parsed JSON; "reconnected" runs after a lost connection
                                  is back; the "end" event closes the stream for good.
   qruntime.refresh(id)           re-fetch this page with ?fragment=ID and swap element #ID
   Declarative: <div id="x" data-refresh-on="/ui/events/jobs"> refreshes #x on "changed".
   The job page: <section id="job" data-live="/ui/events/jobs/ID"> (see setupJob). */
(function () {
  "use strict";

  let lostStreams = 0;
  let leaving = false;
  window.addEventListener("pagehide", function () { leaving = true; });
  window.addEventListener("beforeunload", function () { leaving = true; });

  function setLost(delta) {
    lostStreams = Math.max(0, lostStreams + delta);
    const banner = document.getElementById("live-banner");
    if (!banner) return;
    if (lostStreams > 0 && !leaving) {
      banner.textContent = "Connection lost — reconnecting…";
      banner.hidden = false;
    } else {
      banner.hidden = true;
      banner.textContent = "";
    }
  }

  function live(url, handlers) {
    let source = null;
    let finished = false;
    let isLost = false;
    let retry = 1000;
    function connect() {
      source = new EventSource(url);
      source.onopen = function () {
        retry = 1000;
        if (isLost) {
          isLost = false;
          setLost(-1);
          if (handlers.reconnected) handlers.reconnected();
        }
      };
      Object.keys(handlers).forEach(function (name) {
        if (name === "reconnected" || name === "end") return;
        source.addEventListener(name, function (event) {
          handlers[name](JSON.parse(event.data), event);
        });
      });
      source.addEventListener("end", function (event) {
        finished = true;
        source.close();
        if (handlers.end) handlers.end(JSON.parse(event.data || "null"));
      });
      source.onerror = function () {
        if (finished || leaving) return;
        if (!isLost) {
          isLost = true;
          setLost(1);
        }
        // CONNECTING: the browser retries by itself. CLOSED (an error answer): we retry.
        if (source.readyState === EventSource.CLOSED) {
          setTimeout(connect, retry);
          retry = Math.min(retry * 2, 15000);
        }
      };
    }
    connect();
    return {
      close: function () {
        finished = true;
        if (source) source.close();
        if (isLost) { isLost = false; setLost(-1); }
      },
    };
  }

  // One fetch at a time per element; events that arrive meanwhile make one more fetch.
  const refreshing = {};
  function refresh(id) {
    const state = refreshing[id] || (refreshing[id] = { busy: false, again: false });
    if (state.busy) { state.again = true; return; }
    state.busy = true;
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", id);
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (answer) {
        if (answer.redirected || !answer.ok) throw new Error("refresh failed: " + answer.status);
        return answer.text();
      })
      .then(function (html) {
        const old = document.getElementById(id);
        if (!old) return;
        const holder = document.createElement("div");
        holder.innerHTML = html;
        const fresh = holder.querySelector("#" + CSS.escape(id));
        if (!fresh) return;
        // Keep keyboard focus where it was when the focused element is redrawn.
        const focused = document.activeElement && document.activeElement.id;
        old.replaceWith(fresh);
        if (focused) { const again = document.getElementById(focused); if (again) again.focus(); }
      })
      .catch(function () { /* the next event or reconnection tries again */ })
      .finally(function () {
        state.busy = false;
        if (state.again) { state.again = false; refresh(id); }
      });
  }

  function setupRefreshing() {
    document.querySelectorAll("[data-refresh-on]").forEach(function (element) {
      const id = element.id;
      live(element.getAttribute("data-refresh-on"), {
        changed: function () { refresh(id); },
        reconnected: function () { refresh(id); },
      });
    });
  }

  function nearBottom(element) {
    return element.scrollHeight - element.scrollTop - element.clientHeight < 40;
  }

  function setupJob() {
    const job = document.getElementById("job");
    if (!job || !job.dataset.live) return;
    const status = document.getElementById("job-status");
    const log = document.getElementById("job-log");
    const interim = document.getElementById("interim-list");
    const interimNone = document.getElementById("interim-none");
    const stream = live(job.dataset.live, {
      state: function (message) {
        if (status) {
          status.textContent = message.status;
          status.className = "badge status-" + message.status.toLowerCase();
        }
        if (message.final) {
          stream.close();
          window.location.reload();  // the result, metrics and timeline, rendered by the server
        } else {
          refresh("timeline");  // the time it started, as the server recorded it
        }
      },
      interim: function (message) {
        if (!interim || interim.querySelector('[data-seq="' + message.seq + '"]')) return;
        const item = document.createElement("li");
        item.dataset.seq = String(message.seq);
        const text = document.createElement("pre");
        text.textContent = message.text;
        item.appendChild(text);
        const follow = nearBottom(interim);
        interim.appendChild(item);
        if (interimNone) interimNone.hidden = true;
        if (follow) interim.scrollTop = interim.scrollHeight;
      },
      log: function (message) {
        if (!log) return;
        const follow = nearBottom(log);
        if (message.reset) log.textContent = message.text;
        else log.textContent += message.text;
        if (follow) log.scrollTop = log.scrollHeight;
      },
    });
  }

  window.qruntime = { live: live, refresh: refresh };
  document.addEventListener("DOMContentLoaded", function () {
    setupRefreshing();
    setupJob();
  });
})();
