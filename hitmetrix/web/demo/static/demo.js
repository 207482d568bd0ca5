// Lovebirds, the demo dating site: likes are custom events, and one button fails on purpose (error capture).
(function () {
  var likes = 0;
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    if (target.id === "break-button") {
      document.getElementById("status").textContent = "Something broke (on purpose).";
      setTimeout(function () { throw new Error("Demo failure: matchmaking service unavailable"); }, 0);
    }
    if (target.classList.contains("like")) {
      likes += 1;
      document.getElementById("likes").textContent = "Likes: " + likes;
      if (window.hitmetrix && window.hitmetrix.track) {
        window.hitmetrix.track("like", { member: target.getAttribute("data-member") });
      }
    }
  });
})();
