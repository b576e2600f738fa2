//! Screen size changes through RandR 1.2, as Xvfb supports them: the screen can shrink and grow
//! back up to the size Xvfb was started with, by giving its one CRTC a mode of the wanted size
//! (created on the fly when missing) and setting the screen size around it.

use x11rb::connection::Connection;
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{ConnectionExt as _, Window};

use super::conn::x_err;
use crate::desktop::DesktopError;

/// Set the screen to `width` x `height`; returns the size the server reports afterwards.
pub fn set_screen_size(
    conn: &impl Connection,
    root: Window,
    width: u16,
    height: u16,
) -> Result<(u16, u16), DesktopError> {
    if width == 0 || height == 0 {
        return Err(DesktopError::Invalid(format!(
            "screen size {width}x{height} is empty"
        )));
    }
    if conn
        .extension_information(randr::X11_EXTENSION_NAME)
        .map_err(x_err)?
        .is_none()
    {
        return Err(DesktopError::MissingExtension("RANDR"));
    }
    conn.randr_query_version(1, 5)
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?;
    let range = conn
        .randr_get_screen_size_range(root)
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?;
    if width > range.max_width
        || height > range.max_height
        || width < range.min_width
        || height < range.min_height
    {
        return Err(DesktopError::Invalid(format!(
            "screen size {width}x{height} outside what the X server allows ({}x{} to {}x{})",
            range.min_width, range.min_height, range.max_width, range.max_height
        )));
    }
    let geom = conn
        .get_geometry(root)
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?;
    if (geom.width, geom.height) == (width, height) {
        return Ok((width, height));
    }
    let res = conn
        .randr_get_screen_resources_current(root)
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?;
    // ~96 dpi, what most desktops assume.
    let mm = |px: u16| u32::from(px) * 254 / 960;

    let crtc = res.crtcs.first().copied();
    let output = res.outputs.first().copied();
    let (Some(crtc), Some(output)) = (crtc, output) else {
        // No CRTC (old RandR): only the screen size can be set.
        conn.randr_set_screen_size(root, width, height, mm(width), mm(height))
            .map_err(x_err)?
            .check()
            .map_err(x_err)?;
        return current_size(conn, root);
    };

    let mode = match res
        .modes
        .iter()
        .find(|m| m.width == width && m.height == height)
    {
        Some(m) => m.id,
        None => {
            let name = format!("deskd-{width}x{height}");
            let info = randr::ModeInfo {
                id: 0,
                width,
                height,
                dot_clock: u32::from(width) * u32::from(height) * 60,
                hsync_start: width,
                hsync_end: width,
                htotal: width,
                hskew: 0,
                vsync_start: height,
                vsync_end: height,
                vtotal: height,
                name_len: name.len() as u16,
                mode_flags: randr::ModeFlag::default(),
            };
            let mode = conn
                .randr_create_mode(root, info, name.as_bytes())
                .map_err(x_err)?
                .reply()
                .map_err(x_err)?
                .mode;
            conn.randr_add_output_mode(output, mode)
                .map_err(x_err)?
                .check()
                .map_err(x_err)?;
            mode
        }
    };

    // The CRTC must fit in the screen at every step: grow the screen first, shrink it last.
    let (gw, gh) = (width.max(geom.width), height.max(geom.height));
    if (gw, gh) != (geom.width, geom.height) {
        conn.randr_set_screen_size(root, gw, gh, mm(gw), mm(gh))
            .map_err(x_err)?
            .check()
            .map_err(x_err)?;
    }
    let reply = conn
        .randr_set_crtc_config(
            crtc,
            x11rb::CURRENT_TIME,
            res.config_timestamp,
            0,
            0,
            mode,
            randr::Rotation::ROTATE0,
            &[output],
        )
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?;
    if reply.status != randr::SetConfig::SUCCESS {
        return Err(DesktopError::Other(format!(
            "RandR refused mode {width}x{height}: {:?}",
            reply.status
        )));
    }
    if (gw, gh) != (width, height) {
        conn.randr_set_screen_size(root, width, height, mm(width), mm(height))
            .map_err(x_err)?
            .check()
            .map_err(x_err)?;
    }
    current_size(conn, root)
}

fn current_size(conn: &impl Connection, root: Window) -> Result<(u16, u16), DesktopError> {
    let g = conn
        .get_geometry(root)
        .map_err(x_err)?
        .reply()
        .map_err(x_err)?;
    Ok((g.width, g.height))
}
