document.getElementById('app')!.textContent = 'imring admin';
