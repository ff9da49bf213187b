/* Keyboard access to search results (checks/test_a11y.py tabs through them).
   Material renders each result link with tabindex="-1" (arrow keys only) and closes the search on Tab, so Tab
   from the search box landed on the hidden, 0-px results wrapper. Here, while the search is open, Tab moves from
   the box through the results, each with a visible focus ring; leaving the search with Tab closes it. */
(function () {
  var toggle = document.getElementById("__search");
  var search = document.querySelector(".md-search");
  if (!toggle || !search) return;
  var RESULTS = ".md-search-result__link, .md-search-result__more > summary";

  function open() { return toggle.checked; }

  function sync() {
    var focusable = open();
    search.querySelectorAll(RESULTS).forEach(function (el) { el.tabIndex = focusable ? 0 : -1; });
    var wrap = search.querySelector(".md-search__scrollwrap");
    // Its results take focus themselves and scroll it into view: the wrapper is no extra, empty tab stop.
    if (wrap) wrap.tabIndex = -1;
  }

  function close() {
    toggle.checked = false;
    toggle.dispatchEvent(new Event("change"));
    sync();
  }

  // Before Material's handler, which closes the search on Tab, and sends any other key (Shift of Shift+Tab
  // included) to the search box: let the browser move focus through the results, forwards and back.
  window.addEventListener("keydown", function (event) {
    if (!open() || !search.contains(document.activeElement)) return;
    var inResults = document.activeElement.closest(".md-search__output");
    if (event.key === "Tab" || (inResults && ["Shift", "Control", "Alt", "Meta"].indexOf(event.key) >= 0)) {
      event.stopImmediatePropagation();
    }
  }, true);
  search.addEventListener("focusout", function (event) {
    if (open() && event.relatedTarget && !search.contains(event.relatedTarget)) close();
  });
  toggle.addEventListener("change", sync);
  new MutationObserver(sync).observe(search, { childList: true, subtree: true });
  sync();
})();

/* A table too wide for the page scrolls sideways in Material's wrapper: a keyboard user must be able to focus it to
   scroll it (WCAG 2.1.1; axe's scrollable-region-focusable). Only wrappers that do scroll become tab stops. */
(function () {
  function label() {
    document.querySelectorAll(".md-typeset__scrollwrap").forEach(function (wrap) {
      var scrolls = wrap.scrollWidth > wrap.clientWidth + 1;
      if (scrolls && !wrap.hasAttribute("tabindex")) {
        wrap.tabIndex = 0;
        wrap.setAttribute("role", "region");
        wrap.setAttribute("aria-label", "Table (scrolls sideways)");
      } else if (!scrolls && wrap.getAttribute("role") === "region") {
        wrap.removeAttribute("tabindex");
        wrap.removeAttribute("role");
        wrap.removeAttribute("aria-label");
      }
    });
  }
  if (window.document$ && window.document$.subscribe) {
    window.document$.subscribe(function () { requestAnimationFrame(label); });
  } else {
    window.addEventListener("load", label);
  }
  window.addEventListener("resize", label);
})();
