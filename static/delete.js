// The Delete button of a photo's or a clip's page: asks first (data-confirm), sends DELETE to data-api,
// then goes to data-next. The button only shows with JavaScript (it is hidden in the HTML).
(function () {
  "use strict";
  const del = document.getElementById("delete");
  if (!del) return;
  del.hidden = false;
  del.addEventListener("click", async function () {
    if (!window.confirm(del.dataset.confirm)) return;
    let response;
    try {
      response = await fetch(del.dataset.api, { method: "DELETE" });
    } catch (e) {
      window.alert("could not reach the server: " + e.message);
      return;
    }
    if (response.status === 204) { window.location.assign(del.dataset.next); return; }
    let message = "delete failed (HTTP " + response.status + ")";
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    window.alert(message);
  });
})();
