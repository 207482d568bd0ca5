// The demo shop: a tiny single-page app with a full-page link, a form and a button that fails.
(function () {
  var view = document.getElementById("view");
  var pages = {
    "/demo/": function () {
      return '<h1 id="home-title">Welcome to the demo shop</h1>' +
        '<p>Click around, fill the sign-up form, break something, then open the dashboard.</p>' +
        '<button id="break-button">Break something</button>' +
        '<p id="status"></p>';
    },
    "/demo/products": function () {
      return '<h1 id="products-title">Products</h1>' +
        ['Blue mug', 'Red scarf', 'Green lamp'].map(function (name, i) {
          return '<div class="product"><h3>' + name + '</h3>' +
            '<button class="buy" data-product="' + i + '" id="buy-' + i + '">Add to cart</button></div>';
        }).join('') + '<p id="cart">Cart: 0 items</p>';
    },
    "/demo/signup": function () {
      return '<h1 id="signup-title">Create an account</h1>' +
        '<form id="signup-form">' +
        '<label>Name <input id="name" name="name" autocomplete="off"></label>' +
        '<label>Email <input id="email" name="email" type="email" autocomplete="off"></label>' +
        '<label>Password <input id="password" name="password" type="password" autocomplete="off"></label>' +
        '<label>About you <textarea id="bio" name="bio"></textarea></label>' +
        '<button id="signup-submit" type="submit">Sign up</button></form><p id="signup-result"></p>';
    }
  };
  var cart = 0;

  function render() {
    var page = pages[location.pathname] || pages["/demo/"];
    view.innerHTML = page();
  }

  function navigate(path) {
    history.pushState({}, "", path);
    render();
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    var link = target.closest("a[data-spa]");
    if (link) {
      event.preventDefault();
      navigate(link.getAttribute("href"));
      return;
    }
    if (target.id === "break-button") {
      document.getElementById("status").textContent = "Something broke (on purpose).";
      setTimeout(function () { throw new Error("Demo failure: checkout service unavailable"); }, 0);
    }
    if (target.classList.contains("buy")) {
      cart += 1;
      document.getElementById("cart").textContent = "Cart: " + cart + " items";
      if (window.hitmetrix && window.hitmetrix.track) {
        window.hitmetrix.track("add_to_cart", { product: target.getAttribute("data-product") });
      }
    }
  });

  document.addEventListener("submit", function (event) {
    if (event.target && event.target.id === "signup-form") {
      event.preventDefault();
      document.getElementById("signup-result").textContent = "Thanks for signing up!";
      if (window.hitmetrix && window.hitmetrix.identify) {
        window.hitmetrix.identify("demo-user-1", { plan: "free" });
      }
    }
  });

  window.addEventListener("popstate", render);
  render();
})();
