document.getElementById('app')!.textContent = 'imring chat';
