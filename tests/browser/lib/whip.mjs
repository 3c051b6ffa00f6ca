// WHIP publisher and WHEP player that run inside a page (so the browser's own WebRTC stack
// does the media). The page must be on the server's origin so that fetch is same-origin.
// Both are non-trickle: the offer is POSTed once ICE gathering is complete.

// Publishes the fake camera and microphone to POST /whip/{room}. The connection is kept in
// `window.whip.pc`; returns {status, location, contentType} of the POST.
export async function publishWhip(page, { roomId, token }) {
  await installNegotiate(page);
  return page.evaluate(async ({ roomId, token }) => {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
    const pc = new RTCPeerConnection({ iceServers: [] });
    for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    window.whip = { pc, stream };
    return window.__yunshiNegotiate(pc, `/whip/${encodeURIComponent(roomId)}`, token);
  }, { roomId, token });
}

// Plays the room with POST /whep/{room}: recvonly audio and video. The connection is kept
// in `window.whep.pc` and the media plays in a <video> element.
export async function playWhep(page, { roomId, token }) {
  await installNegotiate(page);
  return page.evaluate(async ({ roomId, token }) => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.srcObject = new MediaStream();
    document.body.append(video);
    pc.ontrack = (event) => {
      video.srcObject.addTrack(event.track);
      video.play().catch(() => {});
    };
    window.whep = { pc, video };
    return window.__yunshiNegotiate(pc, `/whep/${encodeURIComponent(roomId)}`, token);
  }, { roomId, token });
}

// Installs the offer/answer exchange shared by both in the page.
async function installNegotiate(page) {
  await page.evaluate(() => {
    if (window.__yunshiNegotiate) return;
    window.__yunshiNegotiate = async (pc, path, token) => {
      await pc.setLocalDescription(await pc.createOffer());
      // Non-trickle: wait until every candidate is in the local description.
      await new Promise((resolve, reject) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        const timer = setTimeout(() => reject(new Error('ICE gathering did not complete in 10 s')), 10_000);
        pc.addEventListener('icegatheringstatechange', () => {
          if (pc.iceGatheringState === 'complete') {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      const res = await fetch(path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${token}` },
        body: pc.localDescription.sdp,
      });
      const body = await res.text();
      const result = {
        status: res.status,
        contentType: res.headers.get('Content-Type'),
        location: res.headers.get('Location'),
        body: res.ok ? undefined : body,
      };
      if (res.status === 201) await pc.setRemoteDescription({ type: 'answer', sdp: body });
      return result;
    };
  });
}
