// Meshwork portal: small progressive enhancement over server-rendered pages. Every page works
// without it (forms post and the server answers with a whole page); with it, htmx requests
// carry the CSRF token, console runs get a query id to cancel them by, and a query error moves
// the editor's selection to the position the server reports. No inline script: the CSP forbids it.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  }

  function newQueryId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  // Every htmx request that changes state carries the session's CSRF token in a header.
  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) {
      event.detail.headers["X-CSRF-Token"] = token;
    }
    // A console run names itself, so the Cancel button can name it too.
    var form = event.detail.elt.closest ? event.detail.elt.closest("form[data-query-run]") : null;
    if (form) {
      var id = newQueryId();
      event.detail.parameters["query_id"] = id;
      var holder = document.getElementById("query-id");
      if (holder) {
        holder.value = id;
      }
    }
  });

  // Select the part of the SQL an error points at: from its line and column to the end of the word.
  function showPosition(root) {
    var marker = (root || document).querySelector("[data-sql-line]");
    var editor = document.getElementById("sql");
    if (!marker || !editor) {
      return;
    }
    var line = parseInt(marker.getAttribute("data-sql-line"), 10);
    var column = parseInt(marker.getAttribute("data-sql-column"), 10);
    if (!(line > 0) || !(column > 0)) {
      return;
    }
    var lines = editor.value.split("\n");
    if (line > lines.length) {
      return;
    }
    var start = 0;
    for (var i = 0; i < line - 1; i++) {
      start += lines[i].length + 1;
    }
    start += Math.min(column - 1, lines[line - 1].length);
    var end = start;
    while (end < editor.value.length && !/\s/.test(editor.value.charAt(end))) {
      end++;
    }
    if (end === start && start > 0) {
      start -= 1;
    }
    editor.focus();
    editor.setSelectionRange(start, end);
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    showPosition(event.detail.elt);
  });

  document.addEventListener("DOMContentLoaded", function () {
    showPosition(document);
    // Ctrl+Enter (or Cmd+Enter) in the editor runs the query.
    var editor = document.getElementById("sql");
    if (editor) {
      editor.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && editor.form) {
          event.preventDefault();
          editor.form.requestSubmit();
        }
      });
    }
  });
})();
