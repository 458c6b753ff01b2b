/** Small stroke icons (inline SVG elements, no icon font, nothing fetched). */

import type { ReactElement } from "react";

function Icon({ d, label }: { d: string; label?: string }): ReactElement {
  return (
    // biome-ignore lint/a11y/noSvgWithoutTitle: a labelled icon has its title; an unlabelled one is aria-hidden
    <svg className="icon" viewBox="0 0 24 24" aria-hidden={label ? undefined : true} role={label ? "img" : undefined}>
      {label ? <title>{label}</title> : null}
      <path d={d} />
    </svg>
  );
}

export const PlusIcon = () => <Icon d="M12 5v14M5 12h14" />;
export const MenuIcon = () => <Icon d="M4 7h16M4 12h16M4 17h16" />;
export const CloseIcon = () => <Icon d="M6 6l12 12M18 6L6 18" />;
export const SendIcon = () => <Icon d="M12 19V5M5 12l7-7 7 7" />;
export const StopIcon = () => <Icon d="M7 7h10v10H7z" />;
export const CopyIcon = () => <Icon d="M9 9h10v10H9zM5 15V5h10" />;
export const CheckIcon = () => <Icon d="M5 12l5 5L20 7" />;
export const RetryIcon = () => <Icon d="M4 12a8 8 0 0 1 14-5.3L20 9M20 4v5h-5M20 12a8 8 0 0 1-14 5.3L4 15M4 20v-5h5" />;
export const EditIcon = () => <Icon d="M4 20h4L19 9l-4-4L4 16zM14 6l4 4" />;
export const TrashIcon = () => <Icon d="M5 7h14M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3" />;
export const ChatIcon = () => <Icon d="M5 6h14v10H10l-5 4z" />;
export const DownIcon = () => <Icon d="M12 5v14M5 12l7 7 7-7" />;
