/* help.js — shows which article the widget linked to (as text). */
document.getElementById('article').textContent = new URLSearchParams(location.search).get('article') || '';
